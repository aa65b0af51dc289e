"""Regression: a DataLoader worker forked after the parent used OpenCV must not deadlock (mgdet demo hung
this way after generating the benchmark in-process)."""

import subprocess
import sys
import textwrap


def test_forked_worker_after_cv2_use_in_parent():
    code = textwrap.dedent("""
        import numpy as np, cv2, torch
        import mgdet.data  # sets OpenCV to one thread
        from mgdet.data.collate import seed_worker
        big = np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), dtype=np.uint8)
        for _ in range(3):
            cv2.resize(big, (1500, 1500)); cv2.GaussianBlur(big, (9, 9), 0)  # parent uses cv2
        class DS(torch.utils.data.Dataset):
            def __len__(self): return 4
            def __getitem__(self, i): return torch.from_numpy(cv2.resize(big, (64, 64))).float().mean()
        loader = torch.utils.data.DataLoader(DS(), batch_size=2, num_workers=1, worker_init_fn=seed_worker)
        print(len([b for b in loader]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "2"
