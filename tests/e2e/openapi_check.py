"""Checks real HTTP responses against an OpenAPI 3.1 document (a reusable e2e helper).

    api = OpenApi("docs/api/auth.yaml")
    api.check("GET", "/api/v1/auth/users/0190...", 200, headers, body)
    api.unexercised()  # documented operations no check() has touched

check() finds the operation (path templates such as `/users/{id}`, literal segments win over
parameters, HEAD uses GET), the response for the status (exact code, then `4XX`, then
`default`), the media type (the response's Content-Type must be one the document lists for that
status: application/json and application/problem+json are different), resolves `$ref`s against
the whole document, and validates the body with jsonschema's Draft 2020-12 validator (formats
checked: uuid, email, date, date-time, uri). A response the document says has no content must
have an empty body. Headers a response marks `required: true` must be present and match their
schema. Every failure is an AssertionError saying what was sent back and what the document says.

Only Debian's python3-yaml and python3-jsonschema are needed.
"""

import datetime
import json
import re
import urllib.parse

import jsonschema
import yaml
from jsonschema import Draft202012Validator

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def _is_date_time(value):
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_uri(value):
    if not isinstance(value, str):
        return True
    parts = urllib.parse.urlsplit(value)
    return bool(parts.scheme) and not any(c.isspace() for c in value)


def _format_checker():
    checker = jsonschema.FormatChecker()
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("date-time")(_is_date_time)
    checker.checks("uri")(_is_uri)
    return checker


def _media_type(content_type):
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def _header(headers, name):
    """A header's value from a dict, an http.client.HTTPMessage or a list of pairs; None when absent."""
    if headers is None:
        return None
    if hasattr(headers, "get") and not isinstance(headers, dict):
        return headers.get(name)
    if isinstance(headers, dict):
        for k, v in headers.items():
            if k.lower() == name.lower():
                return v
        return None
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


class _Template:
    """One documented path, compiled to a regex; literal segments count for precedence."""

    def __init__(self, template):
        self.template = template
        segments = template.strip("/").split("/") if template.strip("/") else []
        self.literals = 0
        parts = []
        for seg in segments:
            if re.fullmatch(r"\{[^{}/]+\}", seg):
                parts.append("[^/]+")
            else:
                self.literals += 1
                # a segment may mix text and parameters ("{id}.json"); parameters match no '/'
                parts.append(
                    "".join(
                        "[^/]+" if re.fullmatch(r"\{[^{}/]+\}", piece) else re.escape(piece)
                        for piece in re.split(r"(\{[^{}/]+\})", seg)
                        if piece
                    )
                )
        self.regex = re.compile("^/" + "/".join(parts) + "/?$" if parts else "^/?$")
        self.depth = len(segments)

    def match(self, path):
        return self.regex.match(path) is not None


class OpenApi:
    def __init__(self, path):
        self.path = path
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        assert isinstance(self.doc, dict), f"{path}: not a YAML mapping"
        version = str(self.doc.get("openapi", ""))
        assert version.startswith("3.1"), f"{path}: openapi is {version!r}, expected 3.1.x"
        paths = self.doc.get("paths")
        assert isinstance(paths, dict) and paths, f"{path}: no paths"
        self.templates = [_Template(t) for t in paths]
        # Server URLs may carry a base path ("/api/v1/auth") that the document's paths leave out.
        self.base_paths = [""]
        for server in self.doc.get("servers") or []:
            base = urllib.parse.urlsplit(str(server.get("url", ""))).path.rstrip("/")
            if base and base not in self.base_paths:
                self.base_paths.append(base)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.format_checker = _format_checker()
        self.exercised = set()  # (METHOD, template)
        self.exercised_responses = set()  # (METHOD, template, response key)
        self.checked = 0

    # -- lookup --

    def _deref(self, node):
        """Follows a local $ref (components) until a non-reference object is reached."""
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref not in seen, f"{self.path}: $ref cycle at {ref}"
            seen.add(ref)
            assert ref.startswith("#/"), f"{self.path}: only local $refs are supported, got {ref}"
            target = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                assert isinstance(target, dict) and part in target, f"{self.path}: unresolvable $ref {ref}"
                target = target[part]
            node = target
        return node

    def find_template(self, path):
        """The documented template for a request path (query removed), or None."""
        path = urllib.parse.urlsplit(path).path
        for base in self.base_paths:
            if base:
                if not (path == base or path.startswith(base + "/")):
                    continue
                candidate = path[len(base) :] or "/"
            else:
                candidate = path
            hits = [t for t in self.templates if t.match(candidate)]
            if hits:
                hits.sort(key=lambda t: (-t.literals, t.template))
                return hits[0].template
        return None

    def find_operation(self, method, path):
        template = self.find_template(path)
        assert template is not None, (
            f"{method} {path}: no path of {self.path} matches (documented: "
            f"{', '.join(sorted(self.doc['paths']))})"
        )
        item = self._deref(self.doc["paths"][template])
        m = method.lower()
        if m == "head" and "head" not in item:
            m = "get"
        op = item.get(m)
        assert op is not None, (
            f"{method} {path}: {template} documents no {method.upper()} operation "
            f"(it has: {', '.join(k.upper() for k in item if k in HTTP_METHODS)})"
        )
        return template, m.upper(), op

    def find_response(self, method, path, status):
        template, m, op = self.find_operation(method, path)
        # YAML reads an unquoted 200 as an integer; the keys are compared as text
        responses = {str(k): v for k, v in (op.get("responses") or {}).items()}
        for key in (str(status), f"{str(status)[0]}XX", f"{str(status)[0]}xx", "default"):
            if key in responses:
                return template, m, key, self._deref(responses[key])
        raise AssertionError(
            f"{method} {path} answered {status}, which {template} {m} does not document "
            f"(documented: {', '.join(sorted(map(str, responses)))})"
        )

    # -- the check --

    def check(self, method, path, status, headers, body):
        """Validates one response. body: the parsed JSON, bytes/str when not JSON, or None/b''."""
        template, m, key, response = self.find_response(method, path, status)
        where = f"{method} {path} → {status} (document: {template} {m} responses.{key})"
        self.exercised.add((m, template))
        self.exercised_responses.add((m, template, key))
        self.checked += 1

        for name, spec in (response.get("headers") or {}).items():
            spec = self._deref(spec)
            value = _header(headers, name)
            if value is None:
                assert not spec.get("required"), f"{where}: the required header {name} is missing"
                continue
            schema = spec.get("schema")
            if schema is not None:
                self._validate_header(where, name, value, schema)

        content = response.get("content") or {}
        content_type = _header(headers, "Content-Type")
        media = _media_type(content_type)
        empty = body is None or body == b"" or body == ""
        if not content:
            assert empty, f"{where}: the document says no content, but the body is {body!r:.300}"
            return
        if method.upper() == "HEAD":
            return
        assert media is not None, f"{where}: no Content-Type, the document lists {sorted(content)}"
        media_spec = None
        if media in content:
            media_spec = content[media]
        else:
            for declared, spec in content.items():
                if declared in ("*/*", media.split("/")[0] + "/*"):
                    media_spec = spec
        assert media_spec is not None, (
            f"{where}: Content-Type {content_type!r} is not one the document lists: {sorted(content)}"
        )
        media_spec = self._deref(media_spec) or {}
        schema = media_spec.get("schema")
        if schema is None:
            return
        if media == "application/json" or media.endswith("+json"):
            assert not isinstance(body, (bytes, str)), f"{where}: a {media} body that is not JSON: {body!r:.300}"
        self._validate(where, body, schema)

    def _validate(self, where, instance, schema):
        validator = Draft202012Validator(schema, resolver=self.resolver, format_checker=self.format_checker)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            lines = []
            for e in errors[:10]:
                at = "/".join(str(p) for p in e.absolute_path) or "(root)"
                lines.append(f"  at {at}: {e.message}")
            body = json.dumps(instance, ensure_ascii=False)
            raise AssertionError(
                f"{where}: the body does not match the schema:\n" + "\n".join(lines) + f"\nbody: {body:.2000}"
            )

    def _validate_header(self, where, name, value, schema):
        schema = self._deref(schema)
        instance = value
        kind = schema.get("type")
        if kind == "integer":
            assert re.fullmatch(r"-?\d+", value.strip()), f"{where}: header {name}: {value!r} is not an integer"
            instance = int(value)
        elif kind == "number":
            try:
                instance = float(value)
            except ValueError:
                raise AssertionError(f"{where}: header {name}: {value!r} is not a number")
        self._validate(f"{where} header {name}", instance, schema)

    # -- coverage --

    def operations(self):
        ops = set()
        for template, item in self.doc["paths"].items():
            item = self._deref(item)
            for m in item:
                if m in HTTP_METHODS:
                    ops.add((m.upper(), template))
        return ops

    def unexercised(self):
        """Documented operations that no check() touched, sorted."""
        return sorted(self.operations() - self.exercised, key=lambda o: (o[1], o[0]))

    def unexercised_responses(self):
        """Documented (method, path, status) triples that no check() touched, sorted."""
        out = set()
        for m, template in self.operations():
            op = self._deref(self.doc["paths"][template])[m.lower()]
            for key in op.get("responses") or {}:
                if (m, template, str(key)) not in self.exercised_responses:
                    out.add((m, template, str(key)))
        return sorted(out, key=lambda o: (o[1], o[0], o[2]))
