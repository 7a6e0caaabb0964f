"""A tiny GAN: a generator and a discriminator, each with its own Adam, the generator's learning rate decayed."""
