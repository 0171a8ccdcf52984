"""modelship-serve: the ONNX model server every serving pod runs.

Layers, outermost first: ``cli`` (flags and workers) → ``server`` (asyncio
protocol on httptools, routing, lifecycle) and ``grpc_server`` (gRPC's rules
on ``h2``, the HTTP/2 connection, and ``hpack``) → ``v2`` / ``v1`` /
``grpc_codec`` (translate the wire formats, nothing else; ``binary`` holds
raw tensor bytes for REST's binary extension and gRPC) → ``dataplane``
(protocol-independent checks, inference through the ``batcher``, metrics) →
``model`` (onnxruntime sessions). ``fetch`` brings the artifact to local
disk; ``drift`` counts live values on the reference bins; ``oip`` holds the
gRPC .proto and protoc's output.
"""
