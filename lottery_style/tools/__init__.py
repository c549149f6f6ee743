"""Tools that read finished run folders and tickets: the report (and its Hydra callback), stylizing and ONNX export."""
