"""modelship-serve: the ONNX model server every serving pod runs.

Layers, outermost first: ``cli`` (flags and workers) → ``server`` (asyncio
protocol on httptools, routing, lifecycle) → ``v2`` / ``v1`` (translate the
wire formats, nothing else) → ``dataplane`` (protocol-independent checks,
inference through the ``batcher``, metrics) → ``model`` (one onnxruntime
session). ``fetch`` brings the artifact to local disk; ``drift`` counts live
values on the reference bins.
"""
