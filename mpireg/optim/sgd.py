"""Mini-batch optimizers: SGD with (Nesterov) momentum and Adam, each with an L1 proximal step.

Both update the flat parameter vector in place from the *mean* gradient of the global batch
(penalty's smooth part already added). The L1 part of the objective is not differentiable; after
the gradient step each penalised weight is soft-thresholded, w <- sign(w) max(|w| - t, 0), with
t = lr * l1 (for Adam, the per-coordinate step lr / (sqrt(v_hat) + eps) times l1).
"""
from __future__ import annotations

import numpy as np


class Optimizer:
    name = "base"

    def __init__(self, cfg, l1: float = 0.0, l1_mask=None, xp=np):
        self.cfg = cfg
        self.l1 = l1
        self.l1_mask = l1_mask
        self.xp = xp
        self.t = 0  # updates applied

    def step(self, params, grad, lr: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])

    def _prox_l1(self, params, threshold) -> None:
        if not self.l1:
            return
        xp = self.xp
        shrunk = xp.sign(params) * xp.maximum(xp.abs(params) - threshold * self.l1, 0)
        params[...] = xp.where(self.l1_mask > 0, shrunk, params)


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, cfg, l1=0.0, l1_mask=None, xp=np):
        super().__init__(cfg, l1, l1_mask, xp)
        self.velocity = None

    def step(self, params, grad, lr: float) -> None:
        momentum = self.cfg.momentum
        if momentum:
            if self.velocity is None:
                self.velocity = self.xp.zeros_like(params)
            self.velocity *= momentum
            self.velocity += grad
            direction = grad + momentum * self.velocity if self.cfg.nesterov else self.velocity
        else:
            direction = grad
        params -= lr * direction
        self._prox_l1(params, lr)
        self.t += 1

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.velocity is not None:
            state["velocity"] = self.velocity
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "velocity" in state:
            self.velocity = self.xp.asarray(state["velocity"])


class Adam(Optimizer):
    name = "adam"

    def __init__(self, cfg, l1=0.0, l1_mask=None, xp=np):
        super().__init__(cfg, l1, l1_mask, xp)
        self.m = None
        self.v = None

    def step(self, params, grad, lr: float) -> None:
        xp, cfg = self.xp, self.cfg
        if self.m is None:
            self.m, self.v = xp.zeros_like(params), xp.zeros_like(params)
        self.t += 1
        self.m *= cfg.beta1
        self.m += (1 - cfg.beta1) * grad
        self.v *= cfg.beta2
        self.v += (1 - cfg.beta2) * grad * grad
        step_size = lr * np.sqrt(1 - cfg.beta2 ** self.t) / (1 - cfg.beta1 ** self.t)
        denom = xp.sqrt(self.v) + cfg.eps * np.sqrt(1 - cfg.beta2 ** self.t)
        params -= step_size * self.m / denom
        self._prox_l1(params, step_size / denom)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.m is not None:
            state.update(m=self.m, v=self.v)
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "m" in state:
            self.m, self.v = self.xp.asarray(state["m"]), self.xp.asarray(state["v"])
