import sys

from memoria_stream.cli.main import main

sys.exit(main())
