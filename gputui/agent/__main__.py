import sys

from gputui.agent.main import main

sys.exit(main())
