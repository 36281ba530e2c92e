//! The libp2p TLS handshake (`/tls/1.0.0`), with AES-GCM offered before ChaCha20.
//!
//! `libp2p-tls` offers ChaCha20-Poly1305 first and its cipher list cannot be set,
//! so two peers always agree on ChaCha20. With AES-NI, AES-GCM encrypts several
//! times faster, and on a 1 GiB transfer both sides spend a large share of their
//! time there. Peers running other libp2p software still negotiate: the wire
//! protocol, the certificate and its checks are the spec's, only the preference
//! order differs.
//!
//! The certificate is made and checked by `libp2p-tls` itself; this module only
//! builds the rustls configurations and runs the handshake.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::PeerId;
use libp2p::core::UpgradeInfo;
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p::identity::Keypair;
use libp2p::tls::certificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::aws_lc_rs::cipher_suite::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedCipherSuite};

/// TLS 1.3 only, as the libp2p spec requires; AES first (see the module docs).
static CIPHER_SUITES: &[SupportedCipherSuite] =
    &[TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256];

/// The spec's application protocol name.
const ALPN: &[u8] = b"libp2p";

/// What a handshake can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// Making this device's certificate failed.
    #[error("cannot make the TLS certificate: {0}")]
    Certificate(String),
    /// The handshake as the listening side failed.
    #[error("TLS handshake (inbound) failed: {0}")]
    Inbound(std::io::Error),
    /// The handshake as the dialing side failed.
    #[error("TLS handshake (outbound) failed: {0}")]
    Outbound(std::io::Error),
    /// The other side's certificate is not a valid libp2p certificate.
    #[error("the peer's TLS certificate is not valid: {0}")]
    BadCertificate(String),
}

/// The TLS security upgrade for TCP and relayed connections.
#[derive(Clone)]
pub(crate) struct Config {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl Config {
    /// Configurations carrying a certificate for `keypair`.
    pub(crate) fn new(keypair: &Keypair) -> Result<Self, TlsError> {
        let (cert, key) = certificate::generate(keypair).map_err(|e| TlsError::Certificate(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: CIPHER_SUITES.to_vec(),
            ..rustls::crypto::aws_lc_rs::default_provider()
        });
        let bad = |e: rustls::Error| TlsError::Certificate(e.to_string());
        // Not `with_single_cert`: it parses the certificate as a web PKI one, which
        // refuses the libp2p extension (it is marked critical).
        let ours = Arc::new(OwnCert(Arc::new(rustls::sign::CertifiedKey::new(
            vec![cert],
            rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&key).map_err(bad)?,
        ))));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(bad)?
            .with_client_cert_verifier(Arc::new(Libp2pVerifier))
            .with_cert_resolver(ours.clone());
        server.alpn_protocols = vec![ALPN.to_vec()];
        // Our order, not the dialer's: a peer on stock libp2p-tls offers ChaCha20 first.
        server.ignore_client_order = true;
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(bad)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Libp2pVerifier))
            .with_client_cert_resolver(ours);
        client.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Self { server: Arc::new(server), client: Arc::new(client) })
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = std::iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once("/tls/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, futures_rustls::TlsStream<C>);
    type Error = TlsError;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, socket: C, _: Self::Info) -> Self::Future {
        async move {
            let stream =
                futures_rustls::TlsAcceptor::from(self.server).accept(socket).await.map_err(TlsError::Inbound)?;
            let peer = peer_of(stream.get_ref().1)?;
            Ok((peer, stream.into()))
        }
        .boxed()
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, futures_rustls::TlsStream<C>);
    type Error = TlsError;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        async move {
            // The spec: no server name indication, which an unspecified IP address
            // turns off. The swarm checks the peer id against the dialed address.
            let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
            let stream = futures_rustls::TlsConnector::from(self.client)
                .connect(name, socket)
                .await
                .map_err(TlsError::Outbound)?;
            let peer = peer_of(stream.get_ref().1)?;
            Ok((peer, stream.into()))
        }
        .boxed()
    }
}

/// This device's certificate, whatever the other side asks for.
#[derive(Debug)]
struct OwnCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for OwnCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for OwnCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The peer id in the one certificate the other side presented.
fn peer_of(state: &rustls::CommonState) -> Result<PeerId, TlsError> {
    match state.peer_certificates() {
        Some([cert]) => {
            certificate::parse(cert).map(|c| c.peer_id()).map_err(|e| TlsError::BadCertificate(e.to_string()))
        }
        _ => Err(TlsError::BadCertificate("exactly one certificate is required".into())),
    }
}

/// The spec's checks, on both sides: exactly one certificate, self-signed, with a
/// valid libp2p extension, and handshake signatures by its key.
#[derive(Debug)]
struct Libp2pVerifier;

impl Libp2pVerifier {
    fn check_chain(end_entity: &CertificateDer, intermediates: &[CertificateDer]) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General("libp2p TLS requires exactly one certificate".into()));
        }
        certificate::parse(end_entity).map(|_| ()).map_err(invalid)
    }

    fn check_signature(
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        certificate::parse(cert)
            .map_err(invalid)?
            .verify_signature(dss.scheme, message, dss.signature())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }

    /// What the libp2p certificate may be signed with, most preferred first.
    fn schemes() -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA256,
        ]
    }
}

fn invalid(e: certificate::ParseError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(e))))
}

/// TLS 1.2 is never negotiated (the configurations allow 1.3 only), so a 1.2
/// signature is refused rather than checked.
fn no_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("TLS 1.2 is not allowed".into()))
}

impl ServerCertVerifier for Libp2pVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer,
        intermediates: &[CertificateDer],
        _server_name: &ServerName,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::check_chain(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

impl ClientCertVerifier for Libp2pVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer,
        intermediates: &[CertificateDer],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::check_chain(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use rustls::CipherSuite;
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    use super::*;

    type Stream = futures_rustls::TlsStream<Compat<tokio::io::DuplexStream>>;

    fn suite(s: &Stream) -> Option<CipherSuite> {
        s.get_ref().1.negotiated_cipher_suite().map(|c| c.suite())
    }

    async fn handshake<D, L>(dialer: D, listener: L) -> ((PeerId, Stream), (PeerId, Stream))
    where
        D: OutboundConnectionUpgrade<Compat<tokio::io::DuplexStream>, Info = &'static str, Output = (PeerId, Stream)>,
        L: InboundConnectionUpgrade<Compat<tokio::io::DuplexStream>, Info = &'static str, Output = (PeerId, Stream)>,
        D::Error: std::fmt::Debug,
        L::Error: std::fmt::Debug,
    {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (out, inb) = tokio::join!(
            dialer.upgrade_outbound(a.compat(), "/tls/1.0.0"),
            listener.upgrade_inbound(b.compat(), "/tls/1.0.0")
        );
        (out.expect("dialer"), inb.expect("listener"))
    }

    #[tokio::test]
    async fn two_peerbox_peers_agree_on_aes_gcm_and_learn_each_others_ids() {
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let ((seen_b, mut out), (seen_a, mut inb)) =
            handshake(Config::new(&a).unwrap(), Config::new(&b).unwrap()).await;
        assert_eq!(seen_b, b.public().to_peer_id());
        assert_eq!(seen_a, a.public().to_peer_id());
        assert_eq!(suite(&out), Some(CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert_eq!(suite(&inb), Some(CipherSuite::TLS13_AES_128_GCM_SHA256));
        out.write_all(b"hello over AES").await.unwrap();
        out.flush().await.unwrap();
        let mut got = [0u8; 14];
        inb.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello over AES");
    }

    #[tokio::test]
    async fn peers_on_stock_libp2p_tls_connect_either_way_and_get_aes_from_us() {
        let (ours, theirs) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        // They dial: they offer ChaCha20 first, we choose.
        let ((seen_ours, _), (seen_theirs, inb)) =
            handshake(libp2p::tls::Config::new(&theirs).unwrap(), Config::new(&ours).unwrap()).await;
        assert_eq!(seen_ours, ours.public().to_peer_id());
        assert_eq!(seen_theirs, theirs.public().to_peer_id());
        assert_eq!(suite(&inb), Some(CipherSuite::TLS13_AES_128_GCM_SHA256));
        // We dial: they follow our order.
        let ((seen_theirs, out), (seen_ours, _)) =
            handshake(Config::new(&ours).unwrap(), libp2p::tls::Config::new(&theirs).unwrap()).await;
        assert_eq!(seen_theirs, theirs.public().to_peer_id());
        assert_eq!(seen_ours, ours.public().to_peer_id());
        assert_eq!(suite(&out), Some(CipherSuite::TLS13_AES_128_GCM_SHA256));
    }

    #[tokio::test]
    async fn a_dialer_that_does_not_speak_tls_gets_an_error_not_a_connection() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let listen = Config::new(&Keypair::generate_ed25519()).unwrap().upgrade_inbound(b.compat(), "/tls/1.0.0");
        let garbage = async {
            use tokio::io::AsyncWriteExt;
            a.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).await.unwrap();
            a.shutdown().await.unwrap();
            a
        };
        let (r, _a) = tokio::join!(listen, garbage);
        assert!(matches!(r, Err(TlsError::Inbound(_))), "{:?}", r.map(|(p, _)| p));
    }
}
