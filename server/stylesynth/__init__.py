"""stylesynth: real-time neural audio-texture synthesis.

Data flow, one module per step: control (osc, midi) -> state (controls) -> latent w -> spectrogram (model)
-> waveform (pghi, loudness) -> output (playback, OSC clients).
"""
__version__ = "0.1.0"
