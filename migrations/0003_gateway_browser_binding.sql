-- A gateway code is redeemable only by the browser that started the login on the app's host
-- (the hash of its `gh_gw` cookie), so a code minted for one person cannot sign another in.
ALTER TABLE gateway_codes ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
