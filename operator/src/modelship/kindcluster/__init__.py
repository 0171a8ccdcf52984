"""kind on this machine (`make e2e-kind`, the multi-node drills in `make bench`).

Docker comes from Debian and is started by us (and stopped, with what it left
on the host removed); kind from its Go module; kind's base and node images are
built here from Debian packages and the binaries the local cluster already
builds, because there is no registry to pull them from. Modules:

  dockerhost   install, start and stop dockerd; the host before/after; leftovers
  runc_wrapper the OCI runtime that fits privileged containers to this host
  config       pure: the kind cluster config, the nodes' CNI config and routes
  nodeimage    the base and node images, cached by a hash of their inputs
  cluster      create / delete the cluster, its networking, loading images
  session      the whole bring-up as steps, under the machine lock; the e2e run
"""
