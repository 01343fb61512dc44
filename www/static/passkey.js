// Gatehouse passkeys. A form marked `data-passkey="create"` or `"get"` runs that WebAuthn
// ceremony when submitted: it posts its own fields to `data-options` for the options (with a
// fresh challenge), calls navigator.credentials, puts the credential (JSON, binary values in
// base64url) in the form's `credential` field and submits the form for real, so the server
// answers as for any form. A form with `data-conditional` also offers the passkeys in the
// browser's autofill (conditional mediation) on the username field.
// Served from www/static and loaded with the page's CSP nonce; no inline script anywhere.
"use strict";
(() => {
  const toBytes = (s) => {
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  };
  const toB64url = (buf) => {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const descriptors = (list) => (list || []).map((d) => ({ ...d, id: toBytes(d.id) }));

  const creationOptions = (o) => ({
    ...o,
    challenge: toBytes(o.challenge),
    user: { ...o.user, id: toBytes(o.user.id) },
    excludeCredentials: descriptors(o.excludeCredentials),
  });
  const requestOptions = (o) => ({
    ...o,
    challenge: toBytes(o.challenge),
    allowCredentials: descriptors(o.allowCredentials),
  });

  const credentialJSON = (c) => {
    const r = c.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return JSON.stringify({ id: c.id, rawId: toB64url(c.rawId), type: c.type, response });
  };

  class Reauthenticate extends Error {}

  const fetchOptions = async (form, signal) => {
    const body = new URLSearchParams(new FormData(form));
    body.delete("credential");
    const resp = await fetch(form.dataset.options, { method: "POST", body, credentials: "same-origin", signal });
    const answer = await resp.json().catch(() => ({}));
    if (answer.error === "reauthenticate") throw new Reauthenticate();
    if (!resp.ok) throw new Error(answer.error_description || "The passkey request failed.");
    return answer.publicKey;
  };

  const say = (form, text) => {
    const el = form.querySelector("[data-passkey-error]");
    if (el) el.textContent = text;
  };

  const submitWith = (form, credential) => {
    form.elements.credential.value = credentialJSON(credential);
    form.dataset.passkeyDone = "1";
    form.submit();
  };

  // One ceremony at a time: the autofill request is cancelled before the button's runs, its
  // options request too (the server keeps one challenge per sign-in: a late answer to the
  // cancelled request would replace the button's).
  let pending = null;
  const ceremony = async (form, mediation) => {
    if (pending) pending.abort();
    const controller = new AbortController();
    pending = controller;
    const options = await fetchOptions(form, controller.signal);
    if (controller.signal.aborted) throw new DOMException("replaced", "AbortError");
    if (form.dataset.passkey === "create") {
      return navigator.credentials.create({ publicKey: creationOptions(options), signal: controller.signal });
    }
    const request = { publicKey: requestOptions(options), signal: controller.signal };
    if (mediation) request.mediation = mediation;
    return navigator.credentials.get(request);
  };

  const supported = typeof window.PublicKeyCredential === "function" && navigator.credentials;

  for (const form of document.querySelectorAll("form[data-passkey]")) {
    form.addEventListener("submit", async (event) => {
      if (form.dataset.passkeyDone) return;
      event.preventDefault();
      if (!supported) {
        say(form, "This browser cannot use passkeys.");
        return;
      }
      say(form, "");
      try {
        const credential = await ceremony(form, null);
        if (credential) submitWith(form, credential);
      } catch (e) {
        if (e instanceof Reauthenticate) {
          // The server signs the user in again, then they come back here.
          form.dataset.passkeyDone = "1";
          form.submit();
        } else if (e && e.name === "AbortError") {
          // Replaced by another ceremony.
        } else if (e && e.name === "NotAllowedError") {
          say(form, "The passkey request was cancelled or timed out.");
        } else if (e && e.name === "InvalidStateError") {
          say(form, "This passkey is already registered.");
        } else {
          say(form, (e && e.message) || "The passkey request failed.");
        }
      }
    });
  }

  // Autofill: offer the passkeys in the username field's suggestions while the page is open.
  const conditional = document.querySelector("form[data-passkey='get'][data-conditional]");
  if (conditional && supported && typeof PublicKeyCredential.isConditionalMediationAvailable === "function") {
    PublicKeyCredential.isConditionalMediationAvailable().then(async (available) => {
      if (!available) return;
      try {
        const credential = await ceremony(conditional, "conditional");
        if (credential) submitWith(conditional, credential);
      } catch (e) {
        // Cancelled by the button's ceremony, or nothing chosen: the page stays as it is.
      }
    });
  }
})();
