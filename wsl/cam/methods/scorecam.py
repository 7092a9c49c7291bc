"""Score-CAM (Wang et al., CVPR Workshops 2020): forward passes only.

For every channel k: ``A_k`` upsampled to the input (bilinear, align_corners=True) and min-max scaled to
[0, 1] (pytorch-grad-cam's mask; torchcam normalises before upsampling instead), the input multiplied by
it, the class score of that masked input; the map is ``ReLU(sum_k w_k A_k)`` (Eq. 7). One pass per
(image, channel) gives the scores of all K classes of the image; the masked inputs are forwarded
``batch_size`` at a time.

``score`` chooses the weights ``w_k``:

- ``logit_softmax`` (default): the softmax over the C channels of the class logits of the masked inputs,
  as pytorch-grad-cam and torchcam 0.5.0 do (torchcam subtracts the unmasked input's logit first, which
  the softmax over channels cancels);
- ``probability``: the class probability (softmax over the classes) of each masked input, unnormalised
  over channels, as the paper's own code (``score = softmax(model(X * H_k))[c]``, Eq. 6 with the
  softmax output as the model output ``f``).
"""

from __future__ import annotations

from torch import Tensor

from wsl.cam.base import Context, WeightedSum
from wsl.cam.methods._common import channel_scores, check_score, score_weights


class ScoreCAM(WeightedSum):
    name = "scorecam"
    needs = "activations"

    def __init__(self, score: str = "logit_softmax") -> None:
        self.score = check_score(score)

    def weights(self, ctx: Context) -> Tensor:
        scores = channel_scores(ctx, lambda r, k, masks, p: ctx.images[r] * masks, score=self.score)
        return score_weights(scores, self.score)
