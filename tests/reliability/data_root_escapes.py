"""The data-root escapes test_parser_fuzz.py tries through every file:// URI a
client gives curvd (a shard, a checkpoint, a run's archive): the tree it lays
out for each and the statuses expected, by core/api/data_roots.h's contract.

In a path, {R} is a folder inside the data root, {O} one beside the root
(DATA_ROOT-outside/..., whose name the root's is a prefix of) and {UP} the
relative way from {R} to {O}. {R} holds "present" (valid content), "sub/"
and symlinks: to {R}/present, to sub, to nothing inside; to {O}/present, to
{O}/absent, to {O}/present-dir, absolute and relative; a loop. {O} holds
"present" and "present-dir/present", with the same valid content, so that an
escape would be seen to succeed."""

import os

import grpc

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND

# (the status expected, the paths after file:// that must all give it with one
# message, quoted paths aside: an answer must not tell an outside file that
# exists from one that does not, nor from a directory). A path too long for a
# whole message (curvd truncates long messages) stands alone.
ESCAPES = [
    (OK, ["{R}/present", "{R}/link-inside", "{R}//./present"]),
    (INVALID, ["{R}/sub/../present"]),
    (INVALID, ["{R}/{UP}/present", "{R}/{UP}/absent", "{R}/{UP}/present-dir"]),
    (DENIED, ["{O}/present", "{O}/absent", "{O}/present-dir", "{O}/present-dir/present",
              "{R}/link-present", "{R}/link-absent", "{R}/link-dir", "{R}/link-dir/present",
              "{R}/link-dir/absent", "{R}/rel-present", "{R}/rel-absent",
              "/etc/passwd", "/etc/no-such-file-at-all"]),
    (NOT_FOUND, ["{R}/absent", "{R}/dangling", "{R}/present/absent",
                 "{R}/%2e%2e/%2e%2e/%2e%2e/present", "{R}%2f..%2fpresent"]),
    (NOT_FOUND, ["{R}/" + "a/" * 3000 + "present"]),
    (INVALID, ["{R}/sub", "{R}/link-inside-dir"]),
    (DENIED, ["{R}/loop-a"]),
    (INVALID, ["", "etc/passwd", "%2F{R}/present", "~/present"]),
    (INVALID, ["{R}/present\0", "{R}/present\0/{UP}/present", "{R}/sub\0/present"]),
    (DENIED, ["{R}/" + "a" * 300]),
    (DENIED, ["{R}/" + "a" * (1 << 20)]),
]

# Escapes only a shard URI has: an idx labels file outside (named absolutely,
# relatively, through a link) and a CIFAR directory whose batch file links out.
SHARD_ESCAPES = [
    (INVALID, ["{R}/images-idx3-ubyte?labels={UP}/present"]),
    (DENIED, ["{R}/images-idx3-ubyte?labels={O}/present", "{R}/images-idx3-ubyte?labels={O}/absent",
              "{R}/images-idx3-ubyte?labels=link-present",
              "{R}/images-idx3-ubyte?labels=link-absent", "{R}/cifar?format=cifar10"]),
]


def make_escape_tree(data_root, channel, content, images):
    """Lays out {R} = DATA_ROOT/escape/CHANNEL and {O} = DATA_ROOT-outside/CHANNEL
    as the module's docstring says, "present" holding `content` (bytes), and
    {R}/images-idx3-ubyte holding `images`, {R}/cifar/data_batch_1.bin a link
    to {O}/present; returns the fields of the paths' templates."""
    inside = os.path.join(data_root, "escape", channel)
    outside = os.path.join(data_root + "-outside", channel)
    os.makedirs(os.path.join(inside, "sub"))
    os.makedirs(os.path.join(inside, "cifar"))
    os.makedirs(os.path.join(outside, "present-dir"))
    for path, data in [(f"{inside}/present", content), (f"{outside}/present", content),
                       (f"{outside}/present-dir/present", content),
                       (f"{inside}/images-idx3-ubyte", images)]:
        with open(path, "wb") as f:
            f.write(data)
    up = os.path.relpath(outside, inside)
    links = {"link-inside": f"{inside}/present", "link-inside-dir": "sub",
             "dangling": f"{inside}/nothing", "loop-a": "loop-b", "loop-b": "loop-a",
             "link-present": f"{outside}/present", "link-absent": f"{outside}/absent",
             "link-dir": f"{outside}/present-dir", "rel-present": f"{up}/present",
             "rel-absent": f"{up}/absent", "cifar/data_batch_1.bin": f"{outside}/present"}
    for name, target in links.items():
        os.symlink(target, os.path.join(inside, name))
    return {"R": inside, "O": outside, "UP": up}
