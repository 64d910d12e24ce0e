"""ROS-free sensor geometry and timing: camera model, transforms, projection, pairing and the
per-pair pipeline. Arrays and tensors in, arrays out; no rclpy, no message types."""
