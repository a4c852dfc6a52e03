"""The runtime controller (room for issue 12): GPU power caps and in-place pause/resume of a training job,
from grid signals and placement decisions. It sits above ``placement`` and below ``serve``; nothing is
implemented here yet."""
