"""Serve a local web page to upscale pictures: choose or drop pictures, pick a model, compare, download.

The page runs the project's own upscaler (tiled, as upscale.py: the same pixels), one picture at a
time for every browser. It listens on 127.0.0.1 only, unless --host says otherwise: the page has no
login, so anyone who can reach it can upload pictures and use this machine's processors.

    python web.py --port 8000 --model srresnet_x4
"""
import sys

from sr_keras.cli.parsing import ArgumentParser, checked, naming_flags, positive_float
from sr_keras.core.errors import UserError, cli_entry
from sr_keras.core.tfbanner import hide_tensorflow_banner
from sr_keras.web.server import is_loopback

port_number = checked(int, lambda v: 0 <= v <= 65535, "a port number in [0, 65535]")
# Sized for a 24 GiB machine: 16 megapixels become 768 MB of x4 RGB, held with its PNG (about as large
# again) beside one tile's work and earlier results (sr_keras.web.jobs.RESULT_BUDGET): a few GiB at most.
DEFAULT_MEGAPIXELS = 16.0


def parse_args(argv):
    p = ArgumentParser.from_doc(__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but a loopback address (127.0.0.1, localhost, ::1) opens "
                        "the page to other machines (a warning is printed: it has no login)")
    p.add_argument("--port", type=port_number, default=8000, help="port to listen on (0: any free port)")
    p.add_argument("--model", default="srresnet_x4", help="the model the page starts with (a shipped model name)")
    p.add_argument("--max-megapixels", type=positive_float, default=DEFAULT_MEGAPIXELS, metavar="MP",
                   help="largest picture accepted, in millions of pixels (memory: its x4 result takes 48 bytes "
                        "a pixel, its PNG about as much again)")
    return p.parse_args(argv)


def wide_open_warning(host):
    """The warning printed for a --host other machines can reach, or None for a loopback address."""
    if is_loopback(host):
        return None
    return (f"warning: --host {host} opens the page to other machines; it has no login, so anyone who can reach "
            "it can upload pictures and use this machine's processors")


@cli_entry
def main(argv=None):
    flags = parse_args(argv)
    from sr_keras.web.jobs import Worker
    from sr_keras.web.server import address, make_server

    with naming_flags(default_model="--model"):
        worker = Worker(flags.model, flags.max_megapixels)
    try:
        server = make_server(worker, flags.host, flags.port)
    except OSError as e:
        raise UserError(f"cannot listen on --host {flags.host} --port {flags.port}: {e.strerror or e}") from e
    warning = wide_open_warning(flags.host)
    if warning:
        print(warning, file=sys.stderr)
    print(f"serving {address(server)} (model {flags.model}, pictures up to {flags.max_megapixels:g} megapixels); "
          "Ctrl-C stops", flush=True)
    worker.start(before=hide_tensorflow_banner)
    try:
        server.serve_forever()
    finally:
        server.server_close()
