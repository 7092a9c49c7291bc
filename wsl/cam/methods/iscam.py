"""IS-CAM (Naidu et al., "IS-CAM: Integrated Score-CAM for axiomatic-based explanations", 2020): Score-CAM
whose channel scores are integrated along a path of scaled masks.

For ``i = 1..N`` (``samples``), the input is multiplied by ``c_i`` times the Score-CAM mask (see
``scorecam``), with ``c_i = sum_{j=1..i} j / N`` (torchcam's ``ISCAM``, the peer, which accumulates the
coefficient; its docstring writes ``M_i = sum_{j<i} j/N * mask * X``), and the scores are averaged over
the N inputs; weights as Score-CAM's (``score``). With ``N = 1`` (``c_1 = 1``) this is exactly
``scorecam``. Masks follow wsl's Score-CAM (torchcam scales before upsampling: equal when the layer has
the input's resolution). Default ``samples=10`` (torchcam's). Cost: N times Score-CAM's forward passes.
"""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import Context, WeightedSum
from wsl.cam.methods._common import channel_scores, check_score, score_weights


class ISCAM(WeightedSum):
    name = "iscam"
    needs = "activations"

    def __init__(self, samples: int | None = None, score: str = "logit_softmax") -> None:
        self.samples = 10 if samples is None else int(samples)
        if self.samples < 1:
            raise ValueError(f"iscam needs samples >= 1, got {samples}")
        self.score = check_score(score)

    def weights(self, ctx: Context) -> Tensor:
        n = self.samples
        coeff = [sum(j / n for j in range(1, i + 2)) for i in range(n)]

        def masked(rows: Tensor, chans: Tensor, masks: Tensor, p: int) -> Tensor:
            return ctx.images[rows] * (coeff[p] * masks)

        scores = channel_scores(ctx, masked, passes=n, score=self.score)
        return score_weights(scores, self.score)
