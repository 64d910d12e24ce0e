"""g2mono_ros: dense metric depth from a camera and a LiDAR with a G2-MonoDepth UNet.

ROS stays at the edge (``node``, ``codecs``); everything else works on numpy arrays and tensors.
"""

__version__ = '0.1.0'
