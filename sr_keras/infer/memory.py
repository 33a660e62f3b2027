"""What memory is left, and whether one model call fits in it: TensorFlow's allocator aborts the process
(std::bad_alloc) under a memory limit instead of raising, so every call's need is checked first, and the
default tile size is derived from what is left (`auto_tile_mb`). No TensorFlow here.
"""
# Peak memory of one model call, in multiples of its largest activation (input and output of the
# widest op plus oneDNN's reordered copy); measured 4.1x on the full x4 SRResNet on CPU.
ACT_OVERHEAD = 4.0


def memory_left():
    """Bytes this process may still allocate, or None when unknown: the least of the machine's available
    memory, the address-space limit (ulimit -v) less what is mapped, and the cgroup's limit less its use."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        limits.append(int(info["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/status") as f:
                mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            limits.append(soft - mapped)
    except (ImportError, OSError, StopIteration, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            top = f.read().strip()
        if top != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                limits.append(int(top) - int(f.read()))
    except (OSError, ValueError):
        pass
    return max(0, min(limits)) if limits else None


def check_call_memory(upscaler, n, h, w):
    """Raise MemoryError (which pictures.model_errors turns into its one-line out-of-memory error) when
    one model call on n h x w tiles would need more memory than is left: TensorFlow's allocator aborts
    the process (std::bad_alloc) under a memory limit instead of raising. The need is ACT_OVERHEAD times
    the largest activation when the layer graph is known, else at least the float32 output."""
    per_pixel = ACT_OVERHEAD * upscaler.act_bytes if upscaler.act_bytes else upscaler.scale ** 2 * 3 * 4.0
    need = per_pixel * n * h * w
    left = memory_left()
    if left is not None and need > left:
        raise MemoryError(f"one model call on {n} {h}x{w} tile(s) needs about {need / 2 ** 30:.1f} GiB, "
                          f"{left / 2 ** 30:.1f} GiB are left")


# The default activation budget of one tile ("auto"): a quarter of the memory left, between these
# bounds. 4 GiB holds a 512x512 picture (4 megapixels out) of the x4 SRResNet in one pass (4 x 4096 B
# per LR pixel); beyond that, bigger tiles save little (each keeps its margin) while the peak grows.
AUTO_TILE_MB = (256, 4096)
AUTO_SHARE = 4
# The budget when nothing says how much memory is left.
FALLBACK_TILE_MB = 768


def auto_tile_mb():
    """MB of activations one tile may take by default: a quarter of memory_left(), within AUTO_TILE_MB;
    FALLBACK_TILE_MB when that is unknown."""
    left = memory_left()
    if left is None:
        return FALLBACK_TILE_MB
    return int(min(AUTO_TILE_MB[1], max(AUTO_TILE_MB[0], left / AUTO_SHARE / 2 ** 20)))
