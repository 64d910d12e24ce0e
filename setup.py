"""ament_python build of g2mono_ros; also the editable install of the venv path."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'g2mono_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={package_name: ['weights/*.pt', 'weights/*.md']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    # ROS packages and torch come from the distro / the user's CUDA setup, never from here.
    install_requires=['setuptools', 'numpy', 'PyYAML'],
    zip_safe=True,
    maintainer='g2mono_ros maintainers',
    maintainer_email='maintainers@g2mono-ros.dev',
    description='Dense metric depth from a camera and a LiDAR with a G2-MonoDepth UNet.',
    license='MIT',
    # Not tests_require: setuptools >= 72 (Jazzy's pip, colcon in a venv) warns it is unknown.
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'depth_node = g2mono_ros.ros.node:main',
            'depth_lifecycle_node = g2mono_ros.ros.lifecycle_node:main',
            'g2mono = g2mono_ros.cli:main',
        ],
    },
)
