# Firmware version; the build tool checks it matches firmware/tools and writes it into the manifest.
VERSION = "1.0.0"
MAJOR = 1
MINOR = 0
