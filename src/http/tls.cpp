// TLSContext: PEM files loaded into an OpenSSL context through Asio's ssl
// layer, checked at start-up so that a bad file is one clear error rather
// than every handshake failing later.
#include "http/tls.hpp"
#include "raft/http_beast_tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <memory>
#include <string>

namespace raft {

namespace ssl = boost::asio::ssl;

TLSContext::TLSContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TLSContext::~TLSContext() = default;
bool TLSContext::is_server() const noexcept { return impl_->is_server; }
boost::asio::ssl::context& native_context(TLSContext& tls) noexcept { return tls.impl().ctx; }

namespace {

result<std::shared_ptr<TLSContext>> refuse(std::string* why, std::string text) {
  if (why) *why = "tls: " + std::move(text);
  return make_error_code(errc::tls_error);
}

std::string name_of(const X509_NAME* n) {
  char buf[256];
  return X509_NAME_oneline(n, buf, sizeof buf) ? std::string(buf) : std::string("?");
}

std::string openssl_reason() {
  char buf[256];
  ERR_error_string_n(ERR_peek_last_error(), buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// Adds the CRLs of `file` to the context's store and turns on the check of
// the peer's certificate against them. Each CRL is checked here, once, for
// what would otherwise surface as every handshake failing later: that a CA
// of ca_file (already in the store) signed it, and that it is current.
// Returns what is wrong, or an empty string.
std::string load_crls(SSL_CTX* ctx, const std::string& file) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(file.c_str(), "r"), BIO_free);
  if (!bio) return "cannot read it: " + openssl_reason();
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  STACK_OF(X509_OBJECT)* known = X509_STORE_get0_objects(store);
  int count = 0;
  ERR_clear_error();
  for (;;) {
    std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr),
                                                            X509_CRL_free);
    if (!crl) break;
    ++count;
    const std::string which =
        "its CRL #" + std::to_string(count) + " (issuer " + name_of(X509_CRL_get_issuer(crl.get())) + ")";
    bool signed_by_ca = false;
    for (int i = 0; i < sk_X509_OBJECT_num(known) && !signed_by_ca; ++i) {
      X509* ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(known, i));
      signed_by_ca = ca && X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl.get())) == 0 &&
                     X509_CRL_verify(crl.get(), X509_get0_pubkey(ca)) == 1;
    }
    ERR_clear_error();  // a failed X509_CRL_verify against a same-named CA
    if (!signed_by_ca) return which + " is not signed by a CA in ca_file";
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
    if (next && X509_cmp_current_time(next) < 0)
      return which + " is out of date (its next update has passed): every peer would be refused";
    if (X509_STORE_add_crl(store, crl.get()) != 1) return which + ": " + openssl_reason();
  }
  // The loop ends at the end of the file ("no start line") or at something
  // that is not a CRL.
  const unsigned long last = ERR_peek_last_error();
  if (last != 0 && !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE))
    return "not a PEM CRL" + (count ? " after its CRL #" + std::to_string(count) : std::string()) + ": " +
           openssl_reason();
  ERR_clear_error();
  if (count == 0) return "no PEM CRL in it";
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  return {};
}

}  // namespace

struct TLSContextMaker {
  static result<std::shared_ptr<TLSContext>> make(bool server, const TLSOptions& o, std::string* why) {
    if (o.certificate_chain_file.empty() != o.private_key_file.empty())
      return refuse(why, "certificate_chain_file and private_key_file go together");
    if (server && o.certificate_chain_file.empty())
      return refuse(why, "a server needs certificate_chain_file and private_key_file");
    if (o.require_client_certificate && !server) return refuse(why, "require_client_certificate is for a server");
    if (o.require_client_certificate && o.ca_file.empty())
      return refuse(why, "require_client_certificate needs ca_file (the CAs that sign the clients' certificates)");
    if (!o.crl_file.empty() && o.ca_file.empty())
      return refuse(why, "crl_file needs ca_file (the CAs whose revocations it lists)");

    auto impl = std::make_unique<TLSContext::Impl>(server);
    auto& ctx = impl->ctx;
    boost::system::error_code ec;
    // TLS 1.2 and newer only; no compression (CRIME), a fresh key per
    // handshake for DH.
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                        ssl::context::single_dh_use,
                    ec);
    if (ec) return refuse(why, "cannot set protocol options: " + ec.message());
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);

    if (!o.certificate_chain_file.empty()) {
      ctx.use_certificate_chain_file(o.certificate_chain_file, ec);
      if (ec) return refuse(why, "certificate_chain_file " + o.certificate_chain_file + ": " + ec.message());
      // Always a callback: OpenSSL's default one prompts on the process's
      // terminal for an encrypted key, which would block a server at
      // start-up (or a SIGHUP reload). Cleared once the key is in.
      ctx.set_password_callback([pw = o.private_key_password](std::size_t, ssl::context::password_purpose) { return pw; },
                                ec);
      if (!ec) ctx.use_private_key_file(o.private_key_file, ssl::context::pem, ec);
      boost::system::error_code ignored;
      ctx.set_password_callback([](std::size_t, ssl::context::password_purpose) { return std::string(); }, ignored);
      if (ec)
        return refuse(why, "private_key_file " + o.private_key_file + ": " + ec.message() +
                               (o.private_key_password.empty() ? " (if it is encrypted: private_key_password)"
                                                               : " (or a wrong private_key_password)"));
      if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
        return refuse(why, "private_key_file " + o.private_key_file + " does not match the certificate in " +
                               o.certificate_chain_file);
    }
    if (!o.ca_file.empty()) {
      ctx.load_verify_file(o.ca_file, ec);
      if (ec) return refuse(why, "ca_file " + o.ca_file + ": " + ec.message());
      if (!o.crl_file.empty()) {
        if (auto wrong = load_crls(ctx.native_handle(), o.crl_file); !wrong.empty())
          return refuse(why, "crl_file " + o.crl_file + ": " + wrong);
      }
    } else if (!server) {
      ctx.set_default_verify_paths(ec);
      if (ec) return refuse(why, "no ca_file, and the system's CA store cannot be loaded: " + ec.message());
    }
    if (server) {
      // With a ca_file the server asks for a client certificate and checks
      // any it is given; require_client_certificate also refuses none.
      if (o.require_client_certificate) ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
      else if (!o.ca_file.empty()) ctx.set_verify_mode(ssl::verify_peer);
      else ctx.set_verify_mode(ssl::verify_none);
    } else {
      ctx.set_verify_mode(ssl::verify_peer);
    }
    impl->verify_peer_name = o.verify_peer_name;
    return std::shared_ptr<TLSContext>(new TLSContext(std::move(impl)));
  }
};

bool http_detail::peer_still_trusted(SSL* ssl, TLSContext& now) {
  if (SSL_is_init_finished(ssl) != 1) return false;
  SSL_CTX* ctx = now.impl().ctx.native_handle();
  const int mode = SSL_CTX_get_verify_mode(ctx);
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (!(mode & SSL_VERIFY_PEER)) return true;  // a server that checks no client certificates
  if (!peer) return !(mode & SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> check(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  // The chain the peer sent (on a server, without its leaf), and the store's
  // flags (X509_V_FLAG_CRL_CHECK with a crl_file) as the handshake has them.
  if (!check ||
      X509_STORE_CTX_init(check.get(), SSL_CTX_get_cert_store(ctx), peer, SSL_get_peer_cert_chain(ssl)) != 1)
    return false;
  X509_STORE_CTX_set_default(check.get(), now.is_server() ? "ssl_client" : "ssl_server");
  const bool ok = X509_verify_cert(check.get()) == 1;
  ERR_clear_error();
  return ok;
}

result<std::shared_ptr<TLSContext>> TLSContext::server(const TLSOptions& o, std::string* why) {
  return TLSContextMaker::make(true, o, why);
}

result<std::shared_ptr<TLSContext>> TLSContext::client(const TLSOptions& o, std::string* why) {
  return TLSContextMaker::make(false, o, why);
}

}  // namespace raft
