from stylesynth.cli import main

raise SystemExit(main())
