// Minimal Worker around @cloudflare/workers-oauth-provider (installed from npm, pinned in
// bench/package-lock.json). The library is not an identity provider: /authorize is application
// code, here a trivial handler that approves every request as one user (no password check).
import { OAuthProvider } from "@cloudflare/workers-oauth-provider";

const USER = "bench-user";

const defaultHandler = {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/authorize") {
      const oauthReq = await env.OAUTH_PROVIDER.parseAuthRequest(request);
      const { redirectTo } = await env.OAUTH_PROVIDER.completeAuthorization({
        request: oauthReq,
        userId: USER,
        metadata: {},
        scope: oauthReq.scope,
        props: { userId: USER },
        // One user signs in from many "devices" at once during the bench: keep each grant.
        revokeExistingGrants: false,
      });
      return Response.redirect(redirectTo, 302);
    }
    // Bench setup only: pre-register a confidential client (guarded by a per-run token).
    if (url.pathname === "/__setup/client" && request.method === "POST") {
      if (!env.SETUP_TOKEN || request.headers.get("authorization") !== `Bearer ${env.SETUP_TOKEN}`) {
        return new Response("forbidden", { status: 403 });
      }
      const body = await request.json();
      const client = await env.OAUTH_PROVIDER.createClient({
        clientName: "bench",
        redirectUris: body.redirect_uris,
        tokenEndpointAuthMethod: "client_secret_basic",
        grantTypes: ["authorization_code", "refresh_token"],
      });
      return Response.json({ client_id: client.clientId, client_secret: client.clientSecret }, { status: 201 });
    }
    if (url.pathname === "/healthz") return new Response("ok");
    return new Response("not found", { status: 404 });
  },
};

export default new OAuthProvider({
  apiRoute: "/api/",
  apiHandler: { fetch: (_req, _env, ctx) => Response.json({ userId: ctx.props.userId }) },
  defaultHandler,
  authorizeEndpoint: "/authorize",
  tokenEndpoint: "/oauth/token",
  scopesSupported: ["openid", "profile", "email", "offline_access", "api:read"],
  resourceMetadata: {
    resource: "http://127.0.0.1/api/",
    authorization_servers: ["http://127.0.0.1"],
  },
});
