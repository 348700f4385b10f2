"""Sans-IO device codecs, shared by gateway drivers and the simulators that play the other end."""
