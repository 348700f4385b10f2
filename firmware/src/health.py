# Shared node health: error bits for the STATUS frame, and a progress beat that gates watchdog feeding.
ERR_SAFE_MODE = 0x0001
ERR_CONFIG = 0x0002
ERR_SENSOR = 0x0004
ERR_FLASH_INCOMPLETE = 0x0008
ERR_LINK = 0x0010
ERR_CRASH = 0x0020


class Health:
    def __init__(self):
        self.error_bits = 0
        self.messages = []
        self.beats = 0
        self.clips = 0

    def error(self, bit, message):
        self.error_bits |= bit
        if message not in self.messages:
            self.messages.append(message)
            if len(self.messages) > 8:
                self.messages.pop(0)
            print("dozor:", message)

    def beat(self):
        self.beats += 1
