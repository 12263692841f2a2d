from summitline.cli import main

raise SystemExit(main())
