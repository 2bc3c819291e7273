"""course_lib.losses against torch.nn.functional.cross_entropy of the full logits: ``LinearCrossEntropy``
(training) and ``chunked_cross_entropy_loss`` (loss only), for chunk sizes that do and do not divide the
number of rows, with label -100 skipped. Tolerance: 1e-12 absolute in float64.

(The model's choice between these paths and the plain logits path: test_models.py.)
"""

import torch

from course_lib.losses import LinearCrossEntropy, chunked_cross_entropy_loss


def test_linear_cross_entropy_chunking_does_not_matter():
    torch.manual_seed(1)
    h, w = torch.randn(300, 16, dtype=torch.float64), torch.randn(50, 16, dtype=torch.float64)
    t = torch.randint(0, 50, (300,))
    losses = [LinearCrossEntropy.apply(h, w, t, c) for c in (7, 64, 300)]
    ref = torch.nn.functional.cross_entropy(h @ w.T, t)
    for loss in losses:
        torch.testing.assert_close(loss, ref, atol=1e-12, rtol=0)


def test_chunked_loss_only_matches_cross_entropy():
    torch.manual_seed(1)
    h, w = torch.randn(300, 16, dtype=torch.float64), torch.randn(50, 16, dtype=torch.float64)
    t = torch.randint(0, 50, (300,))
    t[::7] = -100
    ref = torch.nn.functional.cross_entropy(h @ w.T, t, ignore_index=-100)
    for chunk in (7, 64, 300):
        torch.testing.assert_close(chunked_cross_entropy_loss(h, w, t, chunk), ref, atol=1e-12, rtol=0)
        torch.testing.assert_close(LinearCrossEntropy.apply(h, w, t, chunk), ref, atol=1e-12, rtol=0)
