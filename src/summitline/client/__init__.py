"""The Python endpoint (aiortc): tests, bots, the headless demo, kiosk terminals."""
