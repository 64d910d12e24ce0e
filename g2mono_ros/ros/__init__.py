"""ROS edge: the only subpackage that imports rclpy or message types (node, codecs, DDS env).

Nothing outside it imports ROS; everything here keeps rclpy imports inside functions or
modules that only the node loads."""
