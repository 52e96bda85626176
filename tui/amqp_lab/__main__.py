import sys

from amqp_lab.cli import main

sys.exit(main())
