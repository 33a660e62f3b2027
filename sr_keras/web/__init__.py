"""A local web page to upscale pictures: choose or drop pictures, pick a model, compare, download.

    python web.py            # or: sr-web; serves http://127.0.0.1:8000/

sr_keras.web.server is the HTTP side (the standard library's ThreadingHTTPServer, no dependency
beyond the core's), sr_keras.web.jobs the one queue and worker thread that run the project's own
upscaler, and static/ the page itself. Importing it imports neither TensorFlow nor a model: the
worker loads them. docs/web.md describes the page and why it is built this way.
"""
