# gdbstacks.py: run by GDBStacks (gdb.go) inside gdb -batch -p PID. It
# writes one line, "FNTABLE-GDB-STACKS " followed by JSON: for each thread
# (keyed by its Linux thread ID), its frames innermost first, each with pc,
# sp (frame.read_register("rsp")), rbp, function name, shared library, gdb's
# frame type and, on the last frame, why gdb stopped. Then it detaches.
import json

import gdb

MAX_FRAMES = 4096  # a walk longer than this is a loop

TYPES = {
    gdb.NORMAL_FRAME: "normal",
    gdb.DUMMY_FRAME: "dummy",
    gdb.INLINE_FRAME: "inline",
    gdb.TAILCALL_FRAME: "tailcall",
    gdb.SIGTRAMP_FRAME: "sigtramp",
    gdb.ARCH_FRAME: "arch",
    gdb.SENTINEL_FRAME: "sentinel",
}


def frames_of(thread):
    thread.switch()
    frames = []
    f = gdb.newest_frame()
    while f is not None:
        d = {"pc": f.pc(), "type": TYPES.get(f.type(), str(f.type())), "func": "", "lib": ""}
        try:
            d["sp"] = int(f.read_register("rsp")) & 0xFFFFFFFFFFFFFFFF
        except gdb.error as e:
            d["sperr"] = str(e)
        try:
            bp = f.read_register("rbp")
            if not bp.is_optimized_out:
                d["bp"] = int(bp) & 0xFFFFFFFFFFFFFFFF
        except gdb.error:
            pass
        try:
            d["func"] = f.name() or ""
        except gdb.error:
            pass
        try:
            d["lib"] = gdb.solib_name(f.pc()) or ""
        except gdb.error:
            pass
        older = None
        if len(frames) + 1 >= MAX_FRAMES:
            d["stop"] = "frame limit %d reached" % MAX_FRAMES
        else:
            try:
                older = f.older()
            except gdb.error as e:
                d["stop"] = str(e)
            if older is None and "stop" not in d:
                d["stop"] = gdb.frame_stop_reason_string(f.unwind_stop_reason())
        frames.append(d)
        f = older
    return frames


out = {}
for th in gdb.selected_inferior().threads():
    try:
        out[str(th.ptid[1])] = frames_of(th)
    except gdb.error as e:
        out[str(th.ptid[1])] = [{"pc": 0, "sp": 0, "func": "", "lib": "", "type": "", "stop": str(e)}]
print("FNTABLE-GDB-STACKS " + json.dumps(out))
gdb.execute("detach")
