import os

from django.core.wsgi import get_wsgi_application

from marrowfind import embedded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marrowfind.settings")
embedded.prepare()
application = get_wsgi_application()
