"""``python -m g2mono_ros <subcommand>``: the package's one command line."""

from g2mono_ros.cli import main

raise SystemExit(main())
