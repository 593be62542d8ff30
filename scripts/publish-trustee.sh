#!/usr/bin/env bash
# Loads an image's reference values and policies into a Trustee KBS through
# its admin API.
#
#   scripts/publish-trustee.sh --kbs URL --admin-key FILE --dir DIR
#                              [--issuer ISS] [--audience AUD] [--role ROLE]
#                              [--pp-measure BIN] [--cacert FILE]
#
# DIR is what `pp-measure image --out DIR` wrote: rvps-message.json is POSTed
# to /kbs/v0/reference-value; attestation-policy.json and
# resource-policy.json (present when the image was measured with
# --init-data) to /kbs/v0/attestation-policy and /kbs/v0/resource-policy.
# Each request carries a fresh admin bearer token (EdDSA JWT with role and
# exp) made by `pp-measure admin-token --key FILE`; FILE is the Ed25519
# admin key (PKCS#8 PEM or OpenSSH) whose public half Trustee trusts.
# --issuer/--audience become the token's iss/aud: they must equal the
# issuer/audience of the entry in Trustee's
#   [admin.authentication.bearer_jwt] identity_providers = [{ issuer = "ISS",
#     audience = "AUD", public_key_uri = "<admin public key>" }]
# else Trustee answers 401 "Cannot verify token with any of the issuers".
# For an https URL, --cacert names the PEM CA that signed Trustee's
# certificate (default: the host's CA store).
# Exits non-zero, printing Trustee's error body, on the first refusal.
set -euo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

kbs="" key="" dir="" role="admin" pp_measure="${PP_MEASURE:-pp-measure}" tls=() claims=()
while [ $# -gt 0 ]; do
    case "$1" in
        --kbs) kbs="${2:?--kbs needs a URL}"; shift 2 ;;
        --admin-key) key="${2:?--admin-key needs a file}"; shift 2 ;;
        --dir) dir="${2:?--dir needs a directory}"; shift 2 ;;
        --role) role="${2:?--role needs a value}"; shift 2 ;;
        --issuer) claims+=(--issuer "${2:?--issuer needs a value}"); shift 2 ;;
        --audience) claims+=(--audience "${2:?--audience needs a value}"); shift 2 ;;
        --pp-measure) pp_measure="${2:?--pp-measure needs a path}"; shift 2 ;;
        --cacert) tls=(--cacert "${2:?--cacert needs a file}"); shift 2 ;;
        -h|--help) usage ;;
        *) echo "publish-trustee: unknown argument $1" >&2; usage ;;
    esac
done
[ -n "$kbs" ] && [ -n "$key" ] && [ -n "$dir" ] || usage
[ -f "$dir/rvps-message.json" ] || { echo "publish-trustee: $dir/rvps-message.json is missing: run pp-measure image --out $dir first" >&2; exit 1; }
kbs="${kbs%/}"

post() {
    local endpoint="$1" body="$2" token status response
    token="$("$pp_measure" admin-token --key "$key" --role "$role" "${claims[@]}")"
    response="$(mktemp)"
    status="$(curl -sS "${tls[@]}" -o "$response" -w '%{http_code}' \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        --data-binary @"$body" "$kbs/kbs/v0/$endpoint")" || { rm -f "$response"; echo "publish-trustee: cannot reach $kbs" >&2; exit 1; }
    if [ "${status:0:1}" != 2 ]; then
        echo "publish-trustee: POST /kbs/v0/$endpoint -> HTTP $status: $(cat "$response")" >&2
        if grep -q 'Cannot verify token with any of the issuers' "$response"; then
            echo "publish-trustee: Trustee trusts no identity provider for this token: check that --admin-key is the key whose public half Trustee's [admin.authentication.bearer_jwt] identity_providers entry names, and pass that entry's issuer and audience as --issuer and --audience" >&2
        fi
        rm -f "$response"
        exit 1
    fi
    rm -f "$response"
    echo "publish-trustee: POST /kbs/v0/$endpoint ($(basename "$body")) -> $status"
}

post reference-value "$dir/rvps-message.json"
if [ -f "$dir/attestation-policy.json" ]; then
    post attestation-policy "$dir/attestation-policy.json"
    post resource-policy "$dir/resource-policy.json"
else
    echo "publish-trustee: no policies in $dir (image measured without --init-data); reference values only"
fi
