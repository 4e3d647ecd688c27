"""Software twin of the resistive network: solver, noise and device models, emulator."""
