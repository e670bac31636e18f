"""Is the process that left a temp folder or marker behind still running?"""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine (another user's included)."""
    if pid <= 0:
        return False  # 0 and negative ids address process groups, not one process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
