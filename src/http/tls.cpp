// TLSContext: PEM files loaded into an OpenSSL context through Asio's ssl
// layer, checked at start-up so that a bad file is one clear error rather
// than every handshake failing later.
#include "http/tls.hpp"
#include "raft/http_beast_tls.hpp"

#include <openssl/ssl.h>

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

result<std::shared_ptr<TLSContext>> TLSContext::server(const TLSOptions& o, std::string* why) {
  return TLSContextMaker::make(true, o, why);
}

result<std::shared_ptr<TLSContext>> TLSContext::client(const TLSOptions& o, std::string* why) {
  return TLSContextMaker::make(false, o, why);
}

}  // namespace raft
