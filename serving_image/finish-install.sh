#!/bin/sh
# Install the real sources over the stub (dependencies are already there),
# drop pip and caches, and check that the image can import what it runs ($1).
set -eu
# The stub's in-tree build is newer than the real sources, and setuptools copies
# only newer files: without this the stub's empty __init__.py files would win.
rm -rf /src/build /src/*/src/*.egg-info
/opt/modelship/bin/pip install --no-cache-dir --no-deps --force-reinstall /src
/opt/modelship/bin/pip uninstall -y pip
find /opt/modelship -name "__pycache__" -prune -exec rm -rf {} +
rm -rf /src
/opt/modelship/bin/python -c "$1"
