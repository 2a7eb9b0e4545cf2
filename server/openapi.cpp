#include "openapi.hpp"

namespace shardurl {

std::string_view openapi_json() noexcept {
  static constexpr std::string_view document = R"json({
  "openapi": "3.0.3",
  "info": {
    "title": "shardurl",
    "version": "1.0.0",
    "description": "A sharded URL shortener. Every link lives on the PostgreSQL shard that a consistent-hash ring (uhashring-compatible) picks for its id. Every error body is {\"detail\": ...}."
  },
  "paths": {
    "/urls": {
      "post": {
        "summary": "Create a short link (or return the one the URL already has)",
        "description": "Two forms. The tutorial's: POST /urls?full_url=U, answered 200 whether or not the link is new. The JSON form: Content-Type application/json with {\"url\": U, \"alias\": A}, answered 201 for a new link and 200 when the URL already has that link. Without an alias the id is the tutorial's own id of the URL when the tutorial stored it, else the shortest prefix (7 characters first) of the base64url SHA-256 of the URL that is free or holds this URL; a prefix held by a deleted link is never reused. An alias of a deleted link answers 410, unless X-Api-Key holds a valid key: then the link is restored, pointing at the given URL (201).",
        "parameters": [
          {"name": "full_url", "in": "query", "required": false,
           "description": "The URL to shorten (the tutorial's form). Required unless a JSON body is sent. Given twice, the last one counts.",
           "example": "https://www.postgresql.org/",
           "schema": {"type": "string", "maxLength": 2048}},
          {"name": "X-Api-Key", "in": "header", "required": false,
           "description": "Only to restore a deleted alias (JSON form). A key that is given must be valid (else 403).",
           "schema": {"type": "string"}}
        ],
        "requestBody": {
          "required": false,
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateLink"}}}
        },
        "responses": {
          "200": {"description": "The link (query form: new or existing; JSON form: existing)",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Link"}}}},
          "201": {"description": "A new link (JSON form)",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Link"}}}},
          "403": {"description": "An X-Api-Key was given and is not one of the configured keys",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
          "409": {"$ref": "#/components/responses/AliasTaken"},
          "410": {"description": "The alias belonged to a deleted link; only a key holder may restore it",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
          "413": {"$ref": "#/components/responses/TooLarge"},
          "422": {"$ref": "#/components/responses/Unprocessable"},
          "503": {"$ref": "#/components/responses/ShardUnavailable"},
          "504": {"$ref": "#/components/responses/ShardTimeout"}
        }
      }
    },
    "/urls/{url_id}": {
      "parameters": [{"$ref": "#/components/parameters/UrlId"}],
      "get": {
        "summary": "Look up a link",
        "responses": {
          "200": {"description": "The link",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Link"}}}},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "410": {"$ref": "#/components/responses/Gone"},
          "503": {"$ref": "#/components/responses/ShardUnavailable"},
          "504": {"$ref": "#/components/responses/ShardTimeout"}
        }
      },
      "head": {
        "summary": "Look up a link (headers only)",
        "responses": {
          "200": {"description": "The link exists"},
          "400": {"description": "The id is not valid"},
          "404": {"description": "No such link"},
          "410": {"description": "The link was deleted"}
        }
      },
      "delete": {
        "summary": "Delete a link",
        "security": [{"ApiKey": []}],
        "responses": {
          "204": {"description": "Deleted: GET and the redirect answer 410 from now on, through every instance within a second; the id is never reused"},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "401": {"description": "No X-Api-Key header",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
          "403": {"description": "The X-Api-Key is not one of the configured keys",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
          "404": {"$ref": "#/components/responses/NotFound"},
          "410": {"$ref": "#/components/responses/Gone"},
          "503": {"$ref": "#/components/responses/ShardUnavailable"},
          "504": {"$ref": "#/components/responses/ShardTimeout"}
        }
      }
    },
    "/{url_id}": {
      "parameters": [{"$ref": "#/components/parameters/UrlId"}],
      "get": {
        "summary": "Redirect to the stored URL",
        "description": "The status is configurable (redirect_status: 301, 302, 307 or 308; default 302). 301 and 308 carry Cache-Control: private, max-age=90; 302 and 307 carry no Cache-Control. Location is the stored URL with any byte that is not allowed in a URI percent-encoded. A stored URL that is not a valid absolute http(s) URL (rows the tutorial stored unvalidated) is never redirected to: 409.",
        "responses": {
          "301": {"$ref": "#/components/responses/Redirect"},
          "302": {"$ref": "#/components/responses/Redirect"},
          "307": {"$ref": "#/components/responses/Redirect"},
          "308": {"$ref": "#/components/responses/Redirect"},
          "400": {"$ref": "#/components/responses/BadRequest"},
          "404": {"$ref": "#/components/responses/NotFound"},
          "409": {"description": "The stored URL is not redirected to (GET /urls/{url_id} shows it)",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
          "410": {"$ref": "#/components/responses/Gone"},
          "503": {"$ref": "#/components/responses/ShardUnavailable"},
          "504": {"$ref": "#/components/responses/ShardTimeout"}
        }
      },
      "head": {
        "summary": "Redirect to the stored URL (headers only)",
        "responses": {
          "301": {"$ref": "#/components/responses/Redirect"},
          "302": {"$ref": "#/components/responses/Redirect"},
          "307": {"$ref": "#/components/responses/Redirect"},
          "308": {"$ref": "#/components/responses/Redirect"},
          "404": {"description": "No such link"},
          "409": {"description": "The stored URL is not redirected to"},
          "410": {"description": "The link was deleted"}
        }
      }
    },
    "/healthz": {
      "get": {
        "summary": "Liveness: 200 while the process serves",
        "responses": {"200": {"description": "Serving",
                              "content": {"application/json": {"schema": {"type": "object",
                                "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}}
      },
      "head": {"summary": "Liveness (headers only)", "responses": {"200": {"description": "Serving"}}}
    },
    "/readyz": {
      "get": {
        "summary": "Readiness: every shard's state",
        "description": "200 when no shard is down. 503 names the shards that are down; their keys answer 503 until they are back. A shard is 'unknown' until its first probe.",
        "responses": {
          "200": {"description": "All shards up (or not probed yet)",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
          "503": {"description": "Some shards are down: {\"detail\": \"shards not ready: 5433\", \"shards\": {...}}",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}}
        }
      },
      "head": {"summary": "Readiness (headers only)",
               "responses": {"200": {"description": "All shards up"}, "503": {"description": "Some shards are down"}}}
    },
    "/openapi.json": {
      "get": {
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}
      },
      "head": {"summary": "This document (headers only)", "responses": {"200": {"description": "OpenAPI 3 document"}}}
    },
    "/docs": {
      "get": {
        "summary": "This API as an interactive page",
        "description": "An HTML page that reads /openapi.json, shows every operation and sends requests to this server from the browser (Try it out). Self-contained: it loads nothing from elsewhere, and its Content-Security-Policy lets it talk to this server only.",
        "responses": {"200": {"description": "The page",
                              "content": {"text/html": {"schema": {"type": "string"}}}}}
      },
      "head": {"summary": "The page (headers only)", "responses": {"200": {"description": "The page"}}}
    },
    "/metrics": {
      "get": {
        "summary": "Prometheus metrics",
        "description": "Requests by route and status, latency histograms, every shard's state, sessions, queue, statements, batches and errors, the link cache, open connections and build information, in Prometheus' text exposition format 0.0.4. docs/operations.md lists every metric.",
        "responses": {"200": {"description": "The metrics",
                              "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}}}
      },
      "head": {"summary": "Prometheus metrics (headers only)", "responses": {"200": {"description": "The metrics"}}}
    }
  },
  "components": {
    "parameters": {
      "UrlId": {"name": "url_id", "in": "path", "required": true,
                "description": "The short id, percent-decoded (the tutorial's ids hold '+' and '/': /urls/ab%2Fcd is ab/cd). At most 64 characters.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
    },
    "securitySchemes": {
      "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                 "description": "One of the keys in the config's api_keys or the SHARDURL_API_KEYS environment variable."}
    },
    "schemas": {
      "CreateLink": {
        "type": "object", "required": ["url"], "additionalProperties": false,
        "example": {"url": "https://www.postgresql.org/docs/"},
        "properties": {
          "url": {"type": "string", "maxLength": 2048,
                  "description": "An absolute http or https URL with a host; no whitespace or control characters. Stored and returned exactly as given."},
          "alias": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                    "description": "A chosen id. Reserved: urls, healthz, readyz, metrics, openapi.json, docs."}
        }
      },
      "Link": {
        "type": "object", "required": ["url_id", "url", "server"],
        "properties": {
          "url_id": {"type": "string"},
          "url": {"type": "string"},
          "server": {"$ref": "#/components/schemas/Server"}
        }
      },
      "Server": {
        "type": "object",
        "description": "The shard that stores the link, in uhashring's node shape.",
        "properties": {
          "hostname": {"type": "string"}, "instance": {"nullable": true}, "nodename": {"type": "string"},
          "port": {"nullable": true}, "vnodes": {"type": "integer"}, "weight": {"type": "integer"}
        }
      },
      "Readiness": {
        "type": "object",
        "properties": {
          "status": {"type": "string", "enum": ["ready"]},
          "detail": {"type": "string"},
          "shards": {"type": "object", "additionalProperties": {"type": "object",
            "properties": {"state": {"type": "string", "enum": ["unknown", "up", "down"]},
                           "error": {"type": "string"}, "down_for_ms": {"type": "integer"}}}}
        }
      },
      "Error": {
        "type": "object", "required": ["detail"],
        "properties": {"detail": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}}
      }
    },
    "responses": {
      "BadRequest": {"description": "Malformed request, target, percent-escape, or an id over 64 characters",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "NotFound": {"description": "No such link: {\"detail\": \"Url with id: ID was not found\"}",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Gone": {"description": "The link was deleted: {\"detail\": \"Url with id: ID was deleted\"}",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "AliasTaken": {"description": "The alias already belongs to a different URL",
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "TooLarge": {"description": "The body is over the limit (64 KiB by default)",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Unprocessable": {"description": "Missing full_url (FastAPI's list shape), or a URL, alias or body that cannot be used (a sentence saying why)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "ShardUnavailable": {"description": "The shard that owns the id cannot answer: {\"detail\": \"shard NAME unavailable\"}",
                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "ShardTimeout": {"description": "The owning shard did not answer in time: {\"detail\": \"shard NAME timed out\"}",
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
      "Redirect": {"description": "Redirect to the stored URL",
                   "headers": {"Location": {"schema": {"type": "string"}},
                               "Cache-Control": {"schema": {"type": "string"}, "description": "301 and 308 only"}}}
    }
  }
})json";
  return document;
}

}  // namespace shardurl
