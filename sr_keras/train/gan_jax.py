"""The GAN train and test steps on JAX (sr_keras.train.gan describes the step), in Keras' stateless API.

Keras' JAX trainer passes fit() one optimizer's variables (model.optimizer, here G's); JAXSteps makes that
state G's and D's optimizer variables, in this order, so both are carried through the jitted steps and
written back to the optimizers when fit syncs its state (every epoch end, before the checkpoint). One
step, as the TensorFlow one: G runs once (jax.vjp keeps its backward pass), D is updated on SR held
constant, then G's loss is taken through the updated D and pulled back through G. No loss scaling:
mixed_float16 is refused (mixed_bfloat16 needs none).
"""
import jax
import keras

from sr_keras.core.errors import UserError


def _float32(x):
    return keras.ops.cast(x, "float32")


class JAXSteps:
    """train_step and test_step of gan.SRGAN on JAX, and the state plumbing they need."""

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        if self.dtype_policy.name == "mixed_float16":
            raise UserError("--precision mixed_float16: the JAX GAN step has no loss scaling; use mixed_bfloat16 "
                            "(or float32)")
        super().compile(g_optimizer, d_optimizer, **kwargs)
        trainable = {id(v): i for i, v in enumerate(self.trainable_variables)}
        fixed = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
        # positions of each network's variables in the model's lists, which fit's state follows
        self._slots = {net: ([trainable[id(v)] for v in model.trainable_variables],
                             [fixed[id(v)] for v in model.non_trainable_variables])
                       for net, model in (("g", self.generator), ("d", self.discriminator))}

    def _optimizer_variables(self):
        return [*self.g_optimizer.variables, *self.d_optimizer.variables]

    def _get_jax_state(self, trainable_variables=False, non_trainable_variables=False, optimizer_variables=False,
                       metrics_variables=False, purge_model_variables=False):
        state = super()._get_jax_state(trainable_variables, non_trainable_variables, False, metrics_variables,
                                       purge_model_variables)
        if not optimizer_variables:
            return state
        at = int(bool(trainable_variables)) + int(bool(non_trainable_variables))
        return (*state[:at], [v.value for v in self._optimizer_variables()], *state[at:])

    def jax_state_sync(self):
        state = getattr(self, "_jax_state", None)
        values = state.get("optimizer_variables") if state and not self._jax_state_synced else None
        super().jax_state_sync()  # G's optimizer (model.optimizer) gets the first of `values`, the rest is D's
        for variable, value in zip(self._optimizer_variables(), values or ()):
            variable.assign(value)

    def _take(self, net, trainable, non_trainable):
        t, nt = self._slots[net]
        return [trainable[i] for i in t], [non_trainable[i] for i in nt]

    def _put(self, net, trainable, non_trainable, new_trainable, new_non_trainable):
        t, nt = self._slots[net]
        for i, v in zip(t, new_trainable):
            trainable[i] = v
        for i, v in zip(nt, new_non_trainable):
            non_trainable[i] = v

    def _update_metrics(self, metrics_variables, update):
        """Run update() on the metrics in a stateless scope; returns (its logs, the new metric variables)."""
        mapping = list(zip(self.metrics_variables, metrics_variables))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = update()
        new = [scope.get_current_value(ref) for ref, _ in mapping]
        return logs, [value if n is None else n for n, (_, value) in zip(new, mapping)]

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        trainable, non_trainable = list(trainable), list(non_trainable)
        lr, hr = data
        hr = _float32(hr)
        g_t, g_nt = self._take("g", trainable, non_trainable)
        d_t, d_nt = self._take("d", trainable, non_trainable)
        n_g = len(self.g_optimizer.variables)
        g_opt, d_opt = optimizer_variables[:n_g], optimizer_variables[n_g:]
        generator, discriminator = self.generator, self.discriminator

        def generate(g_t):
            sr, new_nt = generator.stateless_call(g_t, g_nt, lr, training=True)
            return _float32(sr), new_nt

        sr, pull_back, g_nt = jax.vjp(generate, g_t, has_aux=True)

        def d_loss(d_t, d_nt):
            real, d_nt = discriminator.stateless_call(d_t, d_nt, hr, training=True)
            fake, d_nt = discriminator.stateless_call(d_t, d_nt, jax.lax.stop_gradient(sr), training=True)
            per_image, d_real, d_fake = self.discriminator_terms(_float32(real), _float32(fake))
            return keras.ops.mean(per_image), (d_nt, per_image, d_real, d_fake)

        (_, (d_nt, d_per_image, d_real, d_fake)), d_grads = jax.value_and_grad(d_loss, has_aux=True)(d_t, d_nt)
        d_t, d_opt = self.d_optimizer.stateless_apply(d_opt, d_grads, d_t)
        real_after = None
        if self.gan == "relativistic":
            real_after, d_nt = discriminator.stateless_call(d_t, d_nt, hr, training=True)
            real_after = _float32(real_after)

        def g_loss(sr):
            logits, new_nt = discriminator.stateless_call(d_t, d_nt, sr, training=True)
            pixel, content, adversarial = self.generator_terms(hr, sr, real_after, _float32(logits))
            per_image = pixel + content + adversarial
            return keras.ops.mean(per_image), (new_nt, per_image, pixel, content, adversarial)

        (_, (d_nt, g_per_image, pixel, content, adversarial)), sr_grad = jax.value_and_grad(g_loss, has_aux=True)(sr)
        (g_grads,) = pull_back(sr_grad)
        g_t, g_opt = self.g_optimizer.stateless_apply(g_opt, g_grads, g_t)

        self._put("g", trainable, non_trainable, g_t, g_nt)
        self._put("d", trainable, non_trainable, d_t, d_nt)
        values = {"g_loss": g_per_image, "pixel_loss": pixel, "content_loss": content,
                  "adversarial_loss": adversarial, "d_loss": d_per_image, "d_real": d_real, "d_fake": d_fake}

        def update():
            for name, value in values.items():
                self.trackers[name].update_state(value)
            return {name: t.result() for name, t in self.trackers.items()}

        logs, metrics_variables = self._update_metrics(metrics_variables, update)
        return logs, (trainable, non_trainable, [*g_opt, *d_opt], metrics_variables)

    def test_step(self, state, data):
        trainable, non_trainable, metrics_variables = state
        lr, hr = data
        g_t, g_nt = self._take("g", trainable, non_trainable)
        sr, _ = self.generator.stateless_call(g_t, g_nt, lr, training=False)
        sr = _float32(sr)

        def update():
            self.psnr.update_state(hr, sr)
            self.ssim.update_state(hr, sr)
            return {"psnr": self.psnr.result(), "ssim": self.ssim.result()}

        logs, metrics_variables = self._update_metrics(metrics_variables, update)
        return logs, (trainable, non_trainable, metrics_variables)
