"""Training: the recipe, the fit loop, resume, refit, distillation and run folders."""
