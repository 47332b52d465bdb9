import os

from django.core.asgi import get_asgi_application

from marrowfind import embedded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marrowfind.settings")
embedded.prepare()
application = get_asgi_application()
