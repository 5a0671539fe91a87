"""HTML pages of the annotator (verification queue)."""

urlpatterns = []
