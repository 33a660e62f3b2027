"""The GAN train and test steps on TensorFlow (sr_keras.train.gan describes the step): GradientTapes, and losses
averaged over the global batch with tf.nn.compute_average_loss so that gradients stay right under
tf.distribute strategies."""
import tensorflow as tf


class TFSteps:
    """train_step and test_step of gan.SRGAN on TensorFlow."""

    def train_step(self, data):
        lr, hr = data
        hr = tf.cast(hr, tf.float32)
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as g_tape:
            sr = tf.cast(self.generator(lr, training=True), tf.float32)
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_logits = tf.cast(self.discriminator(hr, training=True), tf.float32)
                    fake_logits = tf.cast(self.discriminator(sr, training=True), tf.float32)
                    d_per_image, d_real, d_fake = self.discriminator_terms(real_logits, fake_logits)
                    d_scaled = self.d_optimizer.scale_loss(tf.nn.compute_average_loss(d_per_image))
                self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_scaled, d_vars), d_vars))
                real_after = None
                if self.gan == "relativistic":
                    real_after = tf.cast(self.discriminator(hr, training=True), tf.float32)
            adv_logits = tf.cast(self.discriminator(sr, training=True), tf.float32)
            pixel, content, adversarial = self.generator_terms(hr, sr, real_after, adv_logits)
            g_per_image = pixel + content + adversarial
            g_scaled = self.g_optimizer.scale_loss(tf.nn.compute_average_loss(g_per_image))
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_scaled, g_vars), g_vars))

        values = {"g_loss": g_per_image, "pixel_loss": pixel, "content_loss": content,
                  "adversarial_loss": adversarial, "d_loss": d_per_image, "d_real": d_real, "d_fake": d_fake}
        for name, v in values.items():
            self.trackers[name].update_state(v)
        return self.reducible_logs({name: t.result() for name, t in self.trackers.items()})

    def test_step(self, data):
        lr, hr = data
        sr = tf.cast(self.generator(lr, training=False), tf.float32)
        self.psnr.update_state(hr, sr)
        self.ssim.update_state(hr, sr)
        return self.reducible_logs({"psnr": self.psnr.result(), "ssim": self.ssim.result()})
