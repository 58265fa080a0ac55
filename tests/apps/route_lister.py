"""A jupyter-server extension for tests: ``GET /api/test-routes`` lists the server's routes.

Loaded beside the real extensions, it reports every path pattern the server's tornado
application routes (its own route is under ``api``, already a server path).
"""

import json

from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.routing import PathMatches


def route_patterns(router) -> list[str]:
    """Every path regex reachable from a tornado router, host rules walked through."""
    patterns = []
    for rule in getattr(router, "rules", []):
        if isinstance(rule.matcher, PathMatches):
            patterns.append(rule.matcher.regex.pattern)
        patterns.extend(route_patterns(rule.target))
    return patterns


class RoutesHandler(APIHandler):
    @web.authenticated
    def get(self):
        app = self.application
        patterns = route_patterns(app.default_router) + route_patterns(app.wildcard_router)
        self.finish(json.dumps(sorted(set(patterns))))


def _jupyter_server_extension_points():
    return [{"module": "tests.apps.route_lister"}]


def _load_jupyter_server_extension(serverapp):
    serverapp.web_app.add_handlers(".*$", [(serverapp.base_url + "api/test-routes", RoutesHandler)])
