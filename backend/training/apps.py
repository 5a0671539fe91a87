from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "backend.training"
    label = "training"
    verbose_name = "Training: dataset versions, retraining runs, candidate models"
