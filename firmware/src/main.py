# dozor node entry point (after boot.py). All logic lives in compiled modules; see app.py.
import app

app.run()
