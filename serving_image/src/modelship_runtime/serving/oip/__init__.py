"""Open Inference Protocol v2 gRPC messages: the .proto and protoc's checked-in output."""
