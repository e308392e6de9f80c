#include "support/test_pki.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "base/error.h"

namespace stowage::test {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

[[noreturn]] void fail(std::string_view doing) {
  const unsigned long e = ERR_get_error();
  char buf[256] = {};
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  throw Error(Code::kInternal, fmt::format("test PKI: {}: {}", doing, e != 0 ? buf : "failed"));
}

PkeyPtr generate_key(KeyAlgorithm algorithm) {
  EVP_PKEY* key = algorithm == KeyAlgorithm::kEcP256
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
  if (key == nullptr) fail("generating a key");
  return PkeyPtr(key);
}

PkeyPtr load_key(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) fail("reading a private key");
  return PkeyPtr(key);
}

X509Ptr load_cert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (cert == nullptr) fail("reading a certificate");
  return X509Ptr(cert);
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    fail(fmt::format("adding extension {}={}", OBJ_nid2sn(nid), value));
  }
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

TestCertificate encode(X509* cert, EVP_PKEY* key) {
  TestCertificate out;
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(cert_bio.get(), cert) != 1) fail("writing a certificate");
  out.cert_pem = bio_text(cert_bio.get());
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(key_bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("writing a private key");
  }
  out.key_pem = bio_text(key_bio.get());
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) fail("encoding a certificate as DER");
  out.cert_der.assign(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

// Builds and signs a certificate for `key`. issuer_cert/issuer_key null: self-signed.
TestCertificate make_certificate(const CertificateRequest& request, bool is_ca, EVP_PKEY* key,
                                 X509* issuer_cert, EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) fail("creating a certificate");
  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    fail("setting a serial number");
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                  static_cast<long>(std::chrono::seconds(request.validity).count()));
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn = request.common_name.empty() ? "stowage-test" : request.common_name;
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("Stowage tests"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    fail("setting the subject");
  }
  X509* issuer = issuer_cert != nullptr ? issuer_cert : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    fail("setting issuer and public key");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert.get(), nullptr, nullptr, 0);
  add_extension(cert.get(), &ctx, NID_basic_constraints,
                is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_extension(cert.get(), &ctx, NID_key_usage,
                is_ca ? "critical,keyCertSign,cRLSign,digitalSignature"
                      : "critical,digitalSignature,keyEncipherment");
  add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (!is_ca) {
    std::string eku;
    if (request.server_auth) eku = "serverAuth";
    if (request.client_auth) eku += eku.empty() ? "clientAuth" : ",clientAuth";
    if (!eku.empty()) add_extension(cert.get(), &ctx, NID_ext_key_usage, eku);
  }
  std::string san;
  for (const auto& d : request.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  for (const auto& ip : request.ip_addresses) san += (san.empty() ? "IP:" : ",IP:") + ip;
  if (!san.empty()) add_extension(cert.get(), &ctx, NID_subject_alt_name, san);

  EVP_PKEY* signer = issuer_key != nullptr ? issuer_key : key;
  if (X509_sign(cert.get(), signer, EVP_sha256()) <= 0) fail("signing a certificate");
  return encode(cert.get(), key);
}

}  // namespace

TestCa::TestCa(std::string common_name, KeyAlgorithm key) {
  CertificateRequest request;
  request.common_name = std::move(common_name);
  request.key = key;
  request.server_auth = false;
  request.validity = std::chrono::hours(24 * 7);
  const PkeyPtr pkey = generate_key(key);
  ca_ = make_certificate(request, /*is_ca=*/true, pkey.get(), nullptr, nullptr);
}

TestCertificate TestCa::issue(const CertificateRequest& request) const {
  const PkeyPtr ca_key = load_key(ca_.key_pem);
  const X509Ptr ca_cert = load_cert(ca_.cert_pem);
  const PkeyPtr key = generate_key(request.key);
  return make_certificate(request, /*is_ca=*/false, key.get(), ca_cert.get(), ca_key.get());
}

TestCertificate self_signed_certificate(const CertificateRequest& request) {
  const PkeyPtr key = generate_key(request.key);
  return make_certificate(request, /*is_ca=*/false, key.get(), nullptr, nullptr);
}

}  // namespace stowage::test
