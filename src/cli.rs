//! Command-line definitions and their translation into library calls.
//!
//! clap parses every value into its type here (image references, platforms,
//! hosts, repositories), so a bad one is refused as a usage error before a
//! command starts; each command is then one function of its typed flags.
//!
//! This is the only module that reads the process environment
//! (SOURCE_DATE_EPOCH, where registry credentials and the cache are) or the
//! working directory; everything below gets plain values.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::bind;
use crate::commands::export::{self, RepoTag};
use crate::commands::inspect;
use crate::commands::sign as signing;
use crate::commands::verify;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fleet;
use crate::image::media::LayerCompression;
use crate::image::reference::{Host, ImageRef, OciRef, RegistryRef, Repository, Selector};
use crate::image::{Platform, PlatformChoice};
use crate::layer::bounds;
use crate::net::Timeouts;
use crate::pipeline;
use crate::recipe::Recipe;
use crate::registry::{Access, CredentialSources, Progress, PushOptions};
use crate::seal;
use crate::sign::Identity;

/// What IMAGE may be for the commands that read an image (inspect, audit,
/// export, bind), for their `--help`: a macro, so `concat!` can take it.
macro_rules! image_help {
    () => {
        "IMAGE is one of:\n  \
         oci:PATH[:TAG]         an image in an OCI layout (no tag: the layout's only one),\n  \
         oci:PATH@DIGEST        or any manifest or index in it, by digest;\n  \
         docker-archive:PATH    a `docker save` tarball, checked against its config and\n                         \
         diff_ids. It has no manifest, so its config digest names it;\n  \
         docker://HOST[:PORT]/REPO[:TAG|@DIGEST]\n                         \
         read straight from the registry, every blob checked (size and\n                         \
         digest) as it streams; no pull first. Plain HTTP only for loopback\n                         \
         and --insecure hosts; credentials as `ingot push --help` says.\n\
         An index (a multi-platform image) is narrowed to --platform (linux/amd64\n\
         unless given); a single-platform image of another platform than a given\n\
         --platform is an error."
    };
}

/// `ingot --version`: the release, and the versions of what decides an
/// image's bytes and its seal, which images record in their annotations.
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{}\nlayer encoding {} (dev.ingot.layer.encoding)\nseal policy {} (dev.ingot.seal.policy)\nseal scanner {}",
        env!("CARGO_PKG_VERSION"),
        crate::layer::ENCODING_VERSION,
        seal::POLICY_VERSION,
        seal::scan::SCANNER_VERSION
    )
});

#[derive(Debug, Parser)]
#[command(
    name = "ingot",
    version,
    long_version = LONG_VERSION.as_str(),
    about = "Build sealed, bit-for-bit reproducible OCI images from declarative recipes",
    long_about = "Build sealed, bit-for-bit reproducible OCI images from declarative recipes.\n\n\
                  The same recipe and inputs give the same image digest on any machine, any day.\n\
                  Results go to stdout; progress and logs go to stderr.\n\n\
                  Exit codes: 0 ok, 1 build or verification failure, 2 usage or recipe error."
)]
pub struct Cli {
    /// Print no progress or log lines on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// How long work (layers, base layers, downloads, pushes) shows its
    /// progress on stderr: auto (one line redrawn in place on a terminal,
    /// plain lines elsewhere), plain (a line a second), none. --quiet
    /// means none, and no log lines either.
    #[arg(long, global = true, value_enum, value_name = "WHEN",
          default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Refuse a layer, or any tar ingot reads, of more than N entries
    /// [default: $INGOT_MAX_LAYER_ENTRIES, else 4194304]. Raising it for an
    /// image that needs it changes no digest.
    #[arg(long, global = true, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_layer_entries: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a recipe into an OCI image layout, tagged with the recipe's
    /// version; or every recipe under directories, in dependency order.
    #[command(after_help = "Examples:\n  \
        ingot build recipes/hello/recipe.yaml -o out/hello\n  \
        ingot build recipes/hello                         # a directory: its recipe.yaml\n  \
        ingot build recipes -j 4 --json                   # every recipe below: out/NAME each\n  \
        ingot build --locked recipe.yaml                  # CI: bases must match ingot.lock\n  \
        ingot build --locked recipe.yaml --tag $(git rev-parse --short HEAD) \\\n      \
        --push docker://registry.example.com/team/app     # build, seal, push every tag\n  \
        SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) ingot build recipe.yaml \\\n      \
        --revision $(git rev-parse HEAD) --source https://example.com/repo --json\n\n\
        The image's one timestamp is SOURCE_DATE_EPOCH (0 when unset). stdout carries\n\
        only the manifest digest (or the --json report). A version is immutable: a\n\
        tag the layout (or the --push registry) has for another image is refused,\n\
        naming both digests, unless --replace; the same image again changes nothing.\n\n\
        Several paths, or a directory without recipe.yaml, build a fleet: every\n\
        recipe.yaml found below (to depth 6; hidden directories, out, target,\n\
        node_modules and OCI layouts skipped; a recipe's own subdirectories not\n\
        searched), each into OUT/NAME (OUT: -o, default out), a recipe after the\n\
        recipes of the fleet its recipe: bases lead to, up to -j at once, sharing one\n\
        cache. A failure stops only the recipes on it (skipped); the exit code is 1 if\n\
        any failed or was skipped. Log lines are prefixed with the recipe's name.\n\
        stdout: a line per recipe, STATUS NAME VERSION DIGEST; with --json one object\n\
        per recipe and line: name, version, recipe, output, status (built, unchanged,\n\
        failed, skipped), digest, error, depends_on, layers {built, cached}, started,\n\
        finished, seconds.")]
    Build(BuildArgs),
    /// Show the dependency graph of every recipe under directories, without
    /// building: for CI engines to fan out one job per recipe.
    #[command(after_help = "Examples:\n  \
        ingot plan recipes\n  \
        ingot plan recipes --json | jq -c '[.recipes[] | select(.up_to_date | not) | .dir]'\n\n\
        Recipes are found as `ingot build DIR...` finds them. For each: its base, the\n\
        recipes of the tree it depends on, its wave (0: on none of them; wave N+1 builds\n\
        after wave N), its lock (missing, locked, stale: what `ingot validate --locked`\n\
        finds), and whether it is up to date: its layout (OUT/NAME) tags its version\n\
        with the digest a build would give now, worked out from the build cache alone\n\
        (every layer served from it, nothing written); a layer the cache lacks means\n\
        not up to date, and `reason` says which. --json prints one object:\n  \
        {\"recipes\": [{\"name\", \"version\", \"recipe\", \"dir\", \"output\", \"base\",\n    \
        \"depends_on\", \"wave\", \"lock\", \"valid\", \"problems\", \"built\", \"would_build\",\n    \
        \"up_to_date\", \"reason\"}], \"waves\": [[NAME...]...]}\n\
        Exit codes: 0, or 2 for a usage error.")]
    Plan(PlanArgs),
    /// Pin every base the recipe uses in ingot.lock beside it.
    #[command(after_help = "Examples:\n  \
        ingot lock recipes/hello/recipe.yaml\n  \
        ingot build --locked recipes/hello/recipe.yaml    # in CI\n  \
        ingot lock --update recipes                       # every outdated lock, moved\n\n\
        A base's identity is its config digest (plus its manifest digest where it has\n\
        one). `recipe:` bases are followed and their own bases pinned too.")]
    Lock(LockArgs),
    /// List the recipes whose ingot.lock pins something older than what
    /// resolving gives now: a newer stemcell version, a registry tag that
    /// moved, newer packages in the archive.
    #[command(after_help = "Examples:\n  \
        ingot outdated recipes\n  \
        ingot outdated recipes --json | jq -r '.[] | select(.lock != \"current\") | .recipe'\n  \
        ingot lock --update recipes        # move them, saying what moved\n\n\
        Nothing is built or written. Exit 0 when every lock is current, 1 when one is\n\
        outdated or missing, 2 when a recipe or a resolution failed.")]
    Outdated(OutdatedArgs),
    /// Check recipes and their locks without building and without the
    /// network: for editors and pre-commit hooks.
    #[command(after_help = "Examples:\n  \
        ingot validate recipes/hello                      # the directory's recipe.yaml\n  \
        ingot validate recipes/*/recipe.yaml --locked     # pre-commit: every recipe, locks required\n  \
        ingot validate recipe.yaml --json | jq -c '.errors[]'\n\n\
        Checked: the recipe's schema, values and paths, and those of its recipe: bases;\n\
        its templates, rendered with its vars (base.digest is a placeholder); and\n\
        ingot.lock beside it: that it parses, pins every external base the recipes name\n\
        and no other, pins the stemcell version and the digest a recipe names, and holds\n\
        a closure for every packages step as written (with --locked, that it exists).\n\
        What a tag resolves to now is left to `ingot build --locked`.\n\n\
        Each problem is one line, FILE:LINE:COLUMN: MESSAGE, on stdout; a valid recipe\n\
        is `PATH: ok`. --json prints one JSON object per recipe and line:\n  \
        {\"path\": ..., \"ok\": false, \"errors\": [{\"file\", \"line\", \"column\", \"message\"}]}\n\
        Exit codes: 0 every recipe valid, 2 any invalid.")]
    Validate(ValidateArgs),
    /// Check any image against the seal: no SSH server, keys or port, no
    /// private keys, no world-writable files, no unreviewed setuid.
    #[command(after_help = audit_help())]
    Audit(AuditArgs),
    /// Remove the blobs of an OCI layout that no tag references any more.
    #[command(after_help = "Examples:\n  \
        ingot gc oci:out/hello\n  \
        ingot gc oci:out/hello --dry-run --json\n\n\
        Rebuilding a version leaves its old manifest, config and changed layers behind;\n\
        gc removes every blob that index.json does not reach, under the layout's lock.\n\
        A missing or corrupt referenced blob stops it before anything is removed: run\n\
        ingot verify first. It also removes what killed builds left: staging directories\n\
        beside the layout whose process is gone, and temp files in its root.")]
    Gc(GcArgs),
    /// Look after the build cache.
    #[command(after_help = "Examples:\n  \
        ingot cache du\n  \
        ingot cache prune --cache /var/cache/ingot\n\n\
        The cache maps each layer's inputs (base, steps, source file digests, encoding,\n\
        compression) to the finished layer. Pruning only costs the next build time.")]
    Cache(CacheArgs),
    /// Show an image's layers, config and annotations.
    #[command(after_help = concat!("Examples:\n  \
        ingot inspect oci:out/hello:1.2.0\n  \
        ingot inspect oci:out/hello --json | jq .config\n  \
        ingot inspect docker-archive:hello.tar\n  \
        ingot inspect docker://registry.example.com/team/hello:1.2.0 --json\n\n",
        image_help!(), "\n\n\
        --json names the image and its digest, and what that is the digest of\n\
        (digest_of: manifest, or config for a docker-archive)."))]
    Inspect(InspectArgs),
    /// Compare two images: index, annotations, config, layers, files and
    /// packages, read as streams from any transport.
    #[command(after_help = concat!("Examples:\n  \
        ingot diff oci:out/hello:1.2.0 oci:release/hello:1.2.0\n  \
        ingot diff oci:out/hello:1.2.0 docker://registry.example.com/team/hello:1.2.0\n  \
        ingot diff oci:out/hello:1.2.0 docker-archive:hello.tar --json\n  \
        ingot diff oci:out/app:2.0.0 docker://registry.example.com/team/app:2.0.0 --platform linux/arm64\n\n",
        "OLD and NEW are images as for `ingot inspect` (", "oci:PATH[:TAG|@DIGEST], docker-archive:PATH,\n\
        docker://HOST[:PORT]/REPO[:TAG|@DIGEST]); an index is narrowed to --platform\n\
        (linux/amd64 unless given), and when both name an index, the indexes are\n\
        compared too (platforms added or removed, each platform's manifest).\n\n\
        Compared: the manifests' annotations (not for a docker-archive, which has\n\
        none), the configs field by field (config.Env, config.User, rootfs.diff_ids...;\n\
        history as its number of entries), the layers position by position (shared\n\
        when their diff_ids are equal; the first that differs; in each that differs,\n\
        its files added, removed or changed, and which of kind, content, size, mode,\n\
        owner, mtime, link and xattrs changed), the merged filesystem as a runtime\n\
        unpacks it, and the packages dpkg's status (and status.d) and apk's installed\n\
        list: added, removed, upgraded or downgraded. Layers are streamed and hashed,\n\
        never unpacked; the bottom layers both share are read once.\n\n\
        Output: a header naming both images and digests, then a line per difference:\n\
        + only in NEW, - only in OLD, ~ in both but different, = a shared layer.\n\
        --json prints the whole comparison.\n\n\
        Exit codes, as diff(1): 0 the images are the same, 1 they differ, 2 trouble:\n\
        a usage error, an image that is not there, or one that cannot be read\n\
        (a damaged blob too), with a one-line error."))]
    Diff(DiffArgs),
    /// Write an image's SBOM: an SPDX 2.3 JSON document of the image, its
    /// base, its installed packages and the recipe's own files.
    #[command(after_help = concat!("Examples:\n  \
        ingot sbom oci:out/hello:1.2.0\n  \
        ingot sbom oci:out/hello:1.2.0 -o hello.spdx.json && pyspdxtools -i hello.spdx.json\n  \
        ingot sbom docker-archive:hello.tar | jq '.packages[].name'\n  \
        ingot sbom docker://registry.example.com/team/app:2.0.0 --platform linux/arm64 -o app.spdx.json\n\n",
        image_help!(), "\n\n\
        Listed: the image (name and version from its annotations, else its reference;\n\
        its digest; a pkg:oci purl), the base it records (DESCENDANT_OF), every package\n\
        dpkg's status (and status.d) or apk's installed lists as installed, with version,\n\
        architecture, license where apk records one, and a pkg:deb or pkg:apk purl, and\n\
        every regular file of the image's own layers (not its base's) with its SHA-256\n\
        and SHA-1. Layers are streamed and hashed, never unpacked.\n\n\
        The same image gives the same bytes: documentNamespace comes from the image's\n\
        digest, created from the time it records (SOURCE_DATE_EPOCH). `ingot build`\n\
        attaches this document to the image it makes, as an OCI referrer\n\
        (artifactType application/spdx+json; `ingot inspect` lists it).\n\n\
        Output: the document on stdout, or in FILE with -o (replaced whole)."))]
    Sbom(SbomArgs),
    /// Write an image as a tarball that `docker load` and `podman load` accept.
    #[command(after_help = concat!("Examples:\n  \
        ingot export oci:out/hello:1.2.0 --format docker-archive -o hello.tar\n  \
        docker load -i hello.tar                          # or: podman load -i hello.tar\n  \
        ingot export oci:out/hello:1.2.0 --format docker-archive -o - | podman load\n  \
        ingot export oci:out/hello --format docker-archive -o hello.tar \\\n      \
        --tag registry.example.com/team/hello:1.2.0 --json\n  \
        ingot export docker://registry.example.com/team/hello:1.2.0 --format docker-archive \\\n      \
        -o hello.tar\n  \
        ingot export docker-archive:old.tar --format docker-archive -o new.tar --tag hello:1\n\n",
        image_help!(), "\n\n\
        The archive is `docker save`'s classic layout: manifest.json, repositories, the\n\
        config as <hex>.json and each layer uncompressed as <diff_id hex>/layer.tar. The\n\
        same image gives the same bytes, from whichever transport. Every blob is\n\
        verified; a corrupt image writes nothing. The image is tagged --tag, else\n\
        NAME:TAG from its org.opencontainers.image.title and its tag (in the layout, or\n\
        the reference's), else not at all: a docker-archive has neither, so name it with\n\
        --tag. stdout is empty, or the --json report.\n\n\
        -o - streams the archive to stdout (not to a terminal, and not with --json):\n\
        every layer is checked before the first byte leaves, and again as it streams;\n\
        a failure midway stops short of the tar's end, so a loader refuses it."))]
    Export(ExportArgs),
    /// Bind an image's params to one environment's values: a dotenv file, an
    /// OCI runtime bundle or a Kubernetes Deployment, naming the image by digest.
    #[command(after_help = concat!("Examples:\n  \
        ingot bind oci:out/hello:1.2.0 --values env/prod.yaml --format env -o prod.env\n  \
        ingot bind oci:out/hello:1.2.0 --values env/dev.yaml --format oci-bundle -o bundle\n  \
        sudo runc run --bundle bundle hello\n  \
        ingot bind oci:out/hello:1.2.0 --values env/prod.yaml --format kubernetes \\\n      \
        --repo registry.example.com/team/hello -o deploy.yaml\n  \
        ingot bind docker://registry.example.com/team/hello:1.2.0 --values env/prod.yaml \\\n      \
        --format kubernetes --repo registry.example.com/team/hello -o deploy.yaml\n  \
        ingot bind docker-archive:hello.tar --values env/dev.yaml --format env -o dev.env\n  \
        ingot bind oci:out/hello:1.2.0 --values env/prod.yaml --format kubernetes \\\n      \
        --repo registry.example.com/team/hello -o - | kubectl apply -f -\n\n",
        image_help!(), "\n\n\
        A Deployment names the image by manifest digest, so --format kubernetes does not\n\
        take a docker-archive (exit 2).\n\n\
        -o - writes an env file or a Deployment to stdout (not with --json); a bundle is\n\
        a directory and cannot go there (exit 2).\n\n\
        The image is only read: the same digest goes to every environment.\n\n\
        Values file (YAML), one entry per param the image declares (ingot inspect lists them):\n  \
        LOG_LEVEL: debug                          # a literal, taken as written: 0750 stays \"0750\"\n  \
        DATABASE_URL: { secretRef: app-db/url }   # key url of Kubernetes secret app-db\n  \
        API_TOKEN: { env: CI_API_TOKEN }          # read from ingot's environment now\n\
        A secret param takes only a reference, never a literal, so values files can be\n\
        committed. secretRef is for --format kubernetes; env is for env and oci-bundle.\n\
        A param left out gets its default; a required one left out is an error. A pattern\n\
        must match the whole value. Every problem is listed at once, and nothing is\n\
        written unless there are none (exit 2).\n\n\
        Formats:\n  \
        env          NAME=\"VALUE\" lines sorted by name, in POSIX shell double quotes:\n               \
        \\, \", $ and ` are escaped with a backslash; a newline stays a newline inside\n               \
        the quotes. `set -a; . ./prod.env` reads it back exactly. (Not docker's\n               \
        --env-file, which has no quoting.) Written with mode 0600, replaced whole.\n  \
        oci-bundle   a directory: config.json (mode 0600) and rootfs/. The process runs\n               \
        as the image's user, resolved to numeric ids from its /etc/passwd, with a\n               \
        read-only root, a tmpfs on /tmp, no new privileges and only\n               \
        CAP_NET_BIND_SERVICE. Owners are kept when run as root. -o must not exist.\n  \
        kubernetes   an apps/v1 Deployment: image REPO@DIGEST, env values and\n               \
        secretKeyRefs, a numeric runAsUser, read-only root, no privilege escalation,\n               \
        all capabilities dropped, an emptyDir on /tmp. Needs --repo."))]
    Bind(BindArgs),
    /// Push an image from an OCI layout to a registry.
    #[command(after_help = "Examples:\n  \
        ingot push oci:out/hello:1.2.0 docker://registry.example.com/team/hello\n  \
        ingot push oci:out/hello docker://127.0.0.1:5000/hello:latest --json\n  \
        ingot push oci:out/app:2.0 docker://reg.lan:5000/app --insecure reg.lan:5000\n  \
        ingot push oci:out/app:2.0 docker://reg.example.com/team/app --from-repo team/base\n\n\
        The tag is the destination's, else the source's. Blobs the registry has are\n\
        skipped; others are mounted from --from-repo (or the image's docker:// base on the\n\
        same registry) when the registry will, else uploaded and verified as read.\n\
        stdout carries only the pushed manifest digest (or the --json report).\n\n\
        Registries are spoken to over HTTPS, except loopback ones (127.0.0.0/8, ::1,\n\
        localhost) and those named with --insecure.\n\n\
        Credentials are looked up where podman, skopeo and docker keep them, in the\n\
        order of containers-auth.json(5); the first file that knows the registry wins:\n  \
        1. REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json,\n     \
        else /run/containers/$UID/auth.json\n  \
        2. $XDG_CONFIG_HOME/containers/auth.json, else ~/.config/containers/auth.json\n  \
        3. $DOCKER_CONFIG/config.json, else ~/.docker/config.json\n\
        In each: credHelpers (for the registry), then credsStore, then auths entries.\n\
        A helper is run as `docker-credential-NAME get` with the registry on stdin; it\n\
        must answer within 30 s and in at most 1 MiB.")]
    Push(PushArgs),
    /// Pull an image from a registry into an OCI layout, verified.
    #[command(after_help = "Examples:\n  \
        ingot pull docker://registry.example.com/team/hello:1.2.0 -o out/hello\n  \
        ingot pull docker://127.0.0.1:5000/base@sha256:… -o base --platform linux/arm64\n\n\
        An index is resolved to --platform. Every blob is checked (size and digest)\n\
        before it lands; the layout is written only when all arrived intact, tagged\n\
        with the reference's tag (or by digest only). stdout carries only the manifest\n\
        digest (or the --json report). Transport and credentials: see `ingot push --help`.")]
    Pull(PullArgs),
    /// Make a key pair for signing images, in cosign's format.
    #[command(after_help = "Examples:\n  \
        ingot keygen -o release                           # release.key (0600) and release.pub\n  \
        mkdir keys && ingot keygen -o keys              # an existing DIR: keys/ingot.key, keys/ingot.pub\n\n\
        The private key is an ECDSA P-256 key sealed under a passphrase (scrypt and NaCl\n\
        secretbox, PEM \"ENCRYPTED COSIGN PRIVATE KEY\"), as `cosign generate-key-pair` writes\n\
        it; cosign and `skopeo copy --sign-by-sigstore-private-key` use it as it is. The\n\
        public key is a PEM \"PUBLIC KEY\", for `ingot verify --key`, `cosign verify --key`\n\
        and a containers-policy.json(5) sigstoreSigned keyPath.\n\n\
        The passphrase is $INGOT_SIGNING_PASSPHRASE, else $COSIGN_PASSWORD, else asked\n\
        twice on the terminal; with neither variable and no terminal, keygen fails. An\n\
        existing key file is never overwritten.")]
    Keygen(KeygenArgs),
    /// Sign an image, as cosign does: the signature goes beside the image,
    /// where skopeo, podman and cosign look for it.
    #[command(after_help = "Examples:\n  \
        ingot sign docker://registry.example.com/team/hello:1.2.0 --key release.key\n  \
        ingot sign oci:out/hello:1.2.0 --key release.key --identity registry.example.com/team/hello\n  \
        ingot push oci:out/hello:1.2.0 docker://registry.example.com/team/hello  # and its signature\n\n\
        The signature is a sigstore \"simple signing\" payload naming the image's repository\n\
        (docker-reference HOST/REPO) and its manifest digest, signed with ECDSA-SHA256. It is\n\
        stored as cosign stores it: a layer of the manifest tagged sha256-<hex>.sig in the\n\
        image's repository. Signing again adds a signature; the same one is not added twice.\n\n\
        The image's provenance (the in-toto statement every `ingot build` attaches) is\n\
        signed too: a DSSE envelope of it, attached as another referrer of the image\n\
        (artifactType application/vnd.dsse.envelope.v1+json), which push and pull carry.\n\n\
        A layout has no repository: name the one the image will be pushed to with --identity.\n\
        The signature is then tagged sha256-<hex>.sig in the layout, and `ingot push` carries\n\
        it to the registry with the image.\n\n\
        The passphrase is $INGOT_SIGNING_PASSPHRASE, else $COSIGN_PASSWORD, else asked on\n\
        the terminal. stdout carries the digest signed (or the --json report).")]
    Sign(SignArgs),
    /// Check every blob's size and digest and each image's manifest, config and diff_ids.
    #[command(after_help = "Examples:\n  \
        ingot verify oci:out/hello\n  \
        ingot verify oci:out/hello:1.2.0\n  \
        ingot verify oci:out/hello@sha256:…\n  \
        ingot verify oci:out/hello:1.2.0 --digest sha256:…   # and it must be this image\n  \
        ingot verify oci:out/hello --json | jq '.problems[] | .blob'\n  \
        ingot verify oci:out/hello:1.2.0 --rebuild recipes/hello   # prove it: rebuild, compare\n  \
        ingot verify oci:release/hello:1.2.0 --rebuild recipes/hello --no-cache --json\n\n\
        IMAGE is an OCI layout: oci:PATH (every image in it), oci:PATH:TAG (one tag) or\n\
        oci:PATH@DIGEST (what that manifest or index reaches, listed in index.json or\n\
        not). Other transports are a usage error; inspect, audit and export verify every\n\
        blob they read from them.\n\n\
        The report names the image as given and each manifest or index it checked\n\
        (image: REF, checked: KIND DIGEST (tag TAG)). Every problem is reported, one per\n\
        line (problem: KIND: BLOB: MESSAGE), then a summary line.\n\n\
        --digest sha256:… fails (exit 1, naming both digests) unless the image is that\n\
        manifest or index; without a tag, it picks that image from the layout.\n\n\
        --key PUB, after a clean fsck, requires a signature of the image (`ingot sign`)\n\
        that verifies under the public key PUB and names the image's manifest digest and\n\
        --identity HOST/REPO (a layout has no repository). For docker://HOST/REPO[:TAG]\n\
        images --key is the whole check: the signature at the sha256-<hex>.sig tag, made by\n\
        ingot, cosign or `skopeo copy --sign-by-sigstore-private-key`, must name HOST/REPO\n\
        (or --identity). The image's provenance envelopes (`ingot sign`) must each verify\n\
        under PUB and sign the statement attached to the image; none attached is reported.\n\
        A missing, altered or foreign signature or envelope exits 1 with the reason:\n  \
        ingot verify docker://registry.example.com/team/hello:1.2.0 --key release.pub\n  \
        ingot verify oci:out/hello:1.2.0 --key release.pub --identity registry.example.com/team/hello\n\n\
        --rebuild RECIPE, after a clean fsck (a tampered layout: exit 1, nothing rebuilt),\n\
        reads the settings the image records (SOURCE_DATE_EPOCH, compression, layer\n\
        encoding, platforms, revision, source; at a revision also the recipe's path in its\n\
        repository and the lock's digest) and refuses an image of another encoding, or a\n\
        recipe whose ingot.lock or path is not the recorded one. It then builds the recipe\n\
        with those settings (--locked if the image records a lock) in a temp directory, and\n\
        exits 0 only when the rebuild has the image's digest; otherwise it prints both\n\
        digests and where they part, as `ingot diff` compares them: the first layer that\n\
        differs and its files, the config's fields, the annotations. --cache and --no-cache\n\
        work as for build; progress goes to stderr.\n\n\
        Exit codes: 0 intact, 1 problems found or not the image asked for, 2 not a\n\
        layout, no such tag, or a malformed digest.")]
    Verify(VerifyArgs),
    /// Put an image's own layers on another base, safely: the result is
    /// the image a build on that base gives, digest for digest.
    #[command(after_help = "Examples:\n  \
        ingot rebase oci:out/app:2.0.0 --onto oci:../base/out:1.1.0 -o rebased\n  \
        ingot rebase oci:out/hello --onto stemcell:static@1.1.0 --recipe recipes/hello -o out/hello --replace\n  \
        ingot rebase oci:out/app --onto oci:../base/out:1.1.0 -o rebased --json | jq .new_digest\n\n\
        The old base is the one the image's annotations name (org.opencontainers.image.base.name,\n\
        resolved now and required to be the manifest base.digest records). The image's own\n\
        layers are those above it. NEWBASE is what a recipe's base: says (stemcell:NAME[@VERSION],\n\
        oci:PATH[:TAG], docker-archive:PATH, docker://...) and is recorded as written: write it\n\
        as the recipe would for the digest to match a rebuild. Relative paths are from the\n\
        working directory, or with --recipe from the recipe's.\n\n\
        A layer is kept byte for byte only when a build on NEWBASE would write the same bytes:\n\
        it is not base-dependent (dev.ingot.layer.base-dependent: it read no base file, as a\n\
        user, group, remove, attrs or packages step does), and every path it writes, and each\n\
        directory above, is the same kind of node (absent, directory, file, symlink and target)\n\
        on NEWBASE as on the old base. Without --recipe a layer that fails either is refused,\n\
        one line per layer naming the paths, and nothing is written. With --recipe DIR the\n\
        recipe is built on NEWBASE with the settings the image records (SOURCE_DATE_EPOCH,\n\
        compression, revision, source): those layers are built, the others kept, and SBOM and\n\
        provenance are attached as build attaches them (--no-attest to not).\n\n\
        The result is sealed on its new merged filesystem: a NEWBASE holding what the seal\n\
        forbids (sshd, say) fails as a build on it fails. Config: NEWBASE's, with what the\n\
        image set over its old base on top; history and annotations likewise (base.name and\n\
        base.digest name NEWBASE). The layout is written as build writes it, all or nothing.\n\n\
        Output: the new manifest digest on stdout; --json: old and new digests and bases,\n\
        the layers reused and rebuilt.")]
    Rebase(RebaseArgs),
    /// Print a shell completion script for ingot's commands and flags.
    #[command(after_help = "Examples:\n  \
        ingot completions bash > /etc/bash_completion.d/ingot\n  \
        ingot completions zsh > \"${fpath[1]}/_ingot\"\n  \
        ingot completions fish > ~/.config/fish/completions/ingot.fish\n  \
        source <(ingot completions bash)                  # this shell only\n\n\
        The script is made from the same definitions as --help, so it knows every\n\
        command and flag of this ingot.")]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

// Each command's flags, as its function takes them. Help texts stay on
// `Command`, where clap reads a subcommand's about and after_help.

/// How long the network may take, for every command that talks to a
/// registry or a Debian archive.
#[derive(Debug, Clone, Copy, Args)]
pub struct Network {
    /// Give up on opening a connection (TCP and TLS) to a registry or a
    /// package archive after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30, help_heading = "Network",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub connect_timeout: u64,
    /// Give up on a registry or package archive that sends nothing for
    /// SECS seconds: no answer to a request, or a download (or upload)
    /// that stops moving.
    #[arg(long, value_name = "SECS", default_value_t = 60, help_heading = "Network",
          value_parser = clap::value_parser!(u64).range(1..=86_400),
          long_help = "Give up on a registry or package archive that sends nothing for SECS \
                       seconds: no answer to a request, or a download (or upload) that stops \
                       moving. The wait for an answer includes opening the connection: with \
                       --timeout below --connect-timeout, it bounds connections too.\n\n\
                       Whatever the data rate, a request must also be done within 5 minutes; a \
                       layer or a blob upload within 5 minutes plus a second per 64 KiB of its \
                       size. Registry manifests and indexes are refused beyond 4 MiB, token \
                       responses beyond 1 MiB, as the bytes arrive.\n\n\
                       A refused or dropped connection, and HTTP 429, 502, 503 and 504, are \
                       tried again (4 tries in all, after 0.5 s, 1 s and 2 s, or the \
                       Retry-After the registry asks for, up to 30 s); a timeout is not, nor \
                       an upload whose data was sent.")]
    pub timeout: u64,
}

impl Network {
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(self.connect_timeout),
            stall: Duration::from_secs(self.timeout),
            ..Timeouts::DEFAULT
        }
    }
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe file (YAML), or a directory holding recipe.yaml; several,
    /// or a directory of recipe directories, build each recipe found.
    #[arg(value_name = "RECIPE|DIR", required = true)]
    pub recipes: Vec<PathBuf>,
    /// The OCI layout to write [default: out/NAME]; for several recipes,
    /// the directory of their layouts, DIR/NAME each [default: out].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// How many recipes build at once, for several [default: the cores].
    #[arg(long, short = 'j', value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// VCS revision of the recipe (org.opencontainers.image.revision).
    #[arg(long)]
    pub revision: Option<String>,
    /// URL of the recipe's source (org.opencontainers.image.source).
    #[arg(long)]
    pub source: Option<String>,
    /// Fail unless every base resolves as ingot.lock beside the recipe
    /// says (what CI should use).
    #[arg(long)]
    pub locked: bool,
    /// A further tag for the image, besides its version (a commit id;
    /// repeatable). Like the version, it never moves without --replace.
    #[arg(long = "tag", value_name = "NAME", value_parser = oci_tag)]
    pub tags: Vec<String>,
    /// Move the version's tag (and --tag's) when the layout, or the
    /// registry of --push, has it for another image; without it a
    /// rebuild that changes a version's digest is refused.
    #[arg(long)]
    pub replace: bool,
    /// Attach no SBOM or provenance. By default every build attaches an
    /// SPDX SBOM (per platform image) and an in-toto SLSA provenance (on
    /// the image, or a multi-platform build's index) as OCI referrers in
    /// the layout, which push and pull carry with the image.
    #[arg(long)]
    pub no_attest: bool,
    /// Push the built image to docker://HOST[:PORT]/REPO, at its version
    /// and every --tag, once every check has passed (as `ingot push`).
    #[arg(long, value_name = "docker://HOST/REPO", value_parser = push_repository)]
    pub push: Option<RegistryRef>,
    /// The build cache [default: $XDG_CACHE_HOME/ingot, else ~/.cache/ingot].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Build every layer afresh, neither reading nor filling the cache.
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
    /// Look layers the cache lacks up in this registry repository, where
    /// --cache-to put them (repeatable: asked in order). Each entry is
    /// checked before it is used; a registry that fails costs only time.
    #[arg(long, value_name = "docker://HOST/REPO", value_parser = cache_repository,
          conflicts_with = "no_cache")]
    pub cache_from: Vec<RegistryRef>,
    /// Put each layer's cache entry in this registry repository, as an OCI
    /// artifact tagged key-<hex> (repeatable); what it has is not sent.
    #[arg(long, value_name = "docker://HOST/REPO", value_parser = cache_repository,
          conflicts_with = "no_cache")]
    pub cache_to: Vec<RegistryRef>,
    /// Speak plain HTTP to this registry, for docker:// bases and cache
    /// registries (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    /// Compression of the recipe's layers: gzip (ingot's block gzip, the
    /// default) or zstd (application/vnd.oci.image.layer.v1.tar+zstd).
    #[arg(long, value_enum, default_value_t = LayerCompression::Gzip)]
    pub compression: LayerCompression,
    /// Download Debian packages and indexes from another copy of an
    /// archive: MIRROR for the recipe's only archive, or URL=MIRROR for
    /// the archive at URL (repeatable; also INGOT_MIRROR, space-separated).
    /// What is pinned and built stays the same.
    #[arg(long, value_name = "[URL=]MIRROR")]
    pub mirror: Vec<String>,
    #[command(flatten)]
    pub network: Network,
    /// Print a JSON report instead of the bare digest.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Recipe files, or directories searched for recipe.yaml.
    #[arg(value_name = "RECIPE|DIR", required = true)]
    pub recipes: Vec<PathBuf>,
    /// The directory of the recipes' layouts, DIR/NAME each [default: out].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The settings of the build planned, which its digests depend on.
    #[arg(long)]
    pub revision: Option<String>,
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long, value_enum, default_value_t = LayerCompression::Gzip)]
    pub compression: LayerCompression,
    /// The build cache [default: $XDG_CACHE_HOME/ingot, else ~/.cache/ingot].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Speak plain HTTP to this registry, for docker:// bases (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    #[command(flatten)]
    pub network: Network,
    /// Print the plan as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OutdatedArgs {
    /// Recipe files, directories holding recipe.yaml, or directories
    /// whose recipes are found as `ingot build DIR…` finds them.
    #[arg(value_name = "RECIPE|DIR", required = true)]
    pub recipes: Vec<PathBuf>,
    /// The build cache [default: $XDG_CACHE_HOME/ingot, else ~/.cache/ingot].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Speak plain HTTP to this registry, for docker:// bases (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    /// Download Debian packages and indexes from another copy of an
    /// archive (as `ingot lock --mirror`).
    #[arg(long, value_name = "[URL=]MIRROR")]
    pub mirror: Vec<String>,
    #[command(flatten)]
    pub network: Network,
    /// Print one JSON array: per recipe its lock state and the pins that
    /// would move.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The recipe file (YAML), or a directory holding recipe.yaml; with
    /// --update, any number of them, or directories of recipes.
    #[arg(value_name = "RECIPE|DIR", required = true)]
    pub recipes: Vec<PathBuf>,
    /// Rewrite only the locks that are outdated or missing, and print
    /// exactly which pins moved (as `ingot outdated` lists them).
    #[arg(long)]
    pub update: bool,
    /// The build cache [default: $XDG_CACHE_HOME/ingot, else ~/.cache/ingot].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Speak plain HTTP to this registry, for docker:// bases (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    /// Download Debian packages and indexes from another copy of an
    /// archive: MIRROR for the recipe's only archive, or URL=MIRROR for
    /// the archive at URL (repeatable; also INGOT_MIRROR, space-separated).
    /// What is pinned and built stays the same.
    #[arg(long, value_name = "[URL=]MIRROR")]
    pub mirror: Vec<String>,
    #[command(flatten)]
    pub network: Network,
    /// Print the lock as JSON on stdout as well.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Recipe files, or directories holding recipe.yaml.
    #[arg(value_name = "RECIPE|DIR", required = true)]
    pub recipes: Vec<PathBuf>,
    /// Also require ingot.lock beside each recipe, as `build --locked` does.
    #[arg(long)]
    pub locked: bool,
    /// Print one JSON object per recipe and line: path, ok, errors.
    #[arg(long)]
    pub json: bool,
}

/// Where a command that reads an image finds it: the platform of an
/// index, and the registries it may speak plain HTTP to.
#[derive(Debug, Args)]
pub struct Reach {
    /// The platform to pick from an index [default: linux/amd64]; a
    /// single-platform image of another platform is then an error.
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Speak plain HTTP to this registry, for docker:// images (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    #[command(flatten)]
    pub network: Network,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The image: oci:PATH[:TAG], oci:PATH@DIGEST, docker-archive:PATH
    /// or docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    #[arg(required_unless_present = "list_rules")]
    pub image: Option<ImageRef>,
    #[command(flatten)]
    pub reach: Reach,
    /// Print the seal's rules (with --json: the policy, the scanner
    /// version and each rule's id and description) and exit.
    #[arg(long, conflicts_with = "image")]
    pub list_rules: bool,
    /// Honour the exceptions the image declares about itself (its
    /// dev.ingot.seal.allow annotation); by default they are only shown.
    #[arg(long)]
    pub accept_declared: bool,
    /// The auditor's own exceptions: a YAML list of { rule, path, reason,
    /// digest } (digest optional: the image it is for).
    #[arg(long, value_name = "FILE")]
    pub allow: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// The layout, as oci:PATH.
    #[arg(value_parser = gc_layout)]
    pub image: OciRef,
    /// Report what would be removed, writing nothing (not even the lock
    /// file): works on a layout it cannot write.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// The cache [default: $XDG_CACHE_HOME/ingot, else ~/.cache/ingot].
    #[arg(long, global = true, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: oci:PATH[:TAG], oci:PATH@DIGEST, docker-archive:PATH
    /// or docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    pub image: ImageRef,
    #[command(flatten)]
    pub reach: Reach,
    /// Print the manifest and config as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old image: oci:PATH[:TAG], oci:PATH@DIGEST, docker-archive:PATH
    /// or docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    pub old: ImageRef,
    /// The new image, as OLD.
    pub new: ImageRef,
    #[command(flatten)]
    pub reach: Reach,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The image: oci:PATH[:TAG], oci:PATH@DIGEST, docker-archive:PATH
    /// or docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    pub image: ImageRef,
    /// The file to write (replaced whole, or left alone on failure);
    /// stdout when not given, or -.
    #[arg(long, short, value_name = "FILE|-")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub reach: Reach,
}

#[derive(Debug, Args)]
pub struct RebaseArgs {
    /// The image: oci:PATH[:TAG], oci:PATH@DIGEST or
    /// docker://HOST[:PORT]/REPO[:TAG|@DIGEST], built by ingot.
    pub image: ImageRef,
    /// The new base, written as a recipe's `base:` would name it
    /// (stemcell:static@1.1.0, oci:PATH[:TAG], docker://…).
    #[arg(long, value_name = "NEWBASE", value_parser = base_ref)]
    pub onto: crate::base::BaseRef,
    /// The image's recipe (file, or directory holding recipe.yaml): build
    /// the layers that cannot be kept instead of refusing.
    #[arg(long, value_name = "RECIPE|DIR")]
    pub recipe: Option<PathBuf>,
    /// The OCI layout to write.
    #[arg(long, short)]
    pub output: PathBuf,
    /// A further tag besides the image's version (repeatable).
    #[arg(long = "tag", value_name = "NAME", value_parser = oci_tag)]
    pub tags: Vec<String>,
    /// Move a tag the layout has for another image.
    #[arg(long)]
    pub replace: bool,
    /// With --recipe: attach no SBOM or provenance.
    #[arg(long, requires = "recipe")]
    pub no_attest: bool,
    /// The build cache [default: $XDG_CACHE_HOME/ingot, else ~/.cache/ingot].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Neither read nor fill the build cache.
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
    /// Speak plain HTTP to this registry (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    #[command(flatten)]
    pub network: Network,
    /// Print a JSON report instead of the bare digest.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The image: oci:PATH[:TAG], oci:PATH@DIGEST, docker-archive:PATH
    /// or docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    pub image: ImageRef,
    /// The archive format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write (replaced whole, or left alone on failure), or -
    /// for stdout.
    #[arg(long, short, value_name = "FILE|-")]
    pub output: PathBuf,
    /// The NAME:TAG a loader tags the image with.
    #[arg(long, value_name = "NAME:TAG")]
    pub tag: Option<RepoTag>,
    #[command(flatten)]
    pub reach: Reach,
    /// Print a JSON report: file, size, sha256, repo_tags.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BindArgs {
    /// The image: oci:PATH[:TAG], oci:PATH@DIGEST, docker-archive:PATH
    /// or docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    pub image: ImageRef,
    /// The environment's values (YAML); without it, only defaults bind.
    #[arg(long, value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: bind::Format,
    /// The file (env, kubernetes) or new directory (oci-bundle) to write;
    /// - for stdout (env, kubernetes).
    #[arg(long, short, value_name = "PATH|-")]
    pub output: PathBuf,
    /// The repository the image is pushed to, for --format kubernetes:
    /// registry.example.com/team/app.
    #[arg(long, value_name = "REPOSITORY")]
    pub repo: Option<String>,
    /// The Deployment's name [default: the image's title].
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub reach: Reach,
    /// Print a JSON report: image, digest, output, where each param's
    /// value came from (never the values).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push: oci:PATH[:TAG] or oci:PATH@DIGEST.
    #[arg(value_parser = push_source)]
    pub source: OciRef,
    /// Where to: docker://HOST[:PORT]/REPO[:TAG].
    pub destination: RegistryRef,
    /// A repository on the destination registry to mount missing blobs
    /// from (repeatable).
    #[arg(long = "from-repo", value_name = "REPO")]
    pub from_repo: Vec<Repository>,
    /// Speak plain HTTP to this registry (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    #[command(flatten)]
    pub network: Network,
    /// Print a JSON report (digest, blobs uploaded, mounted, skipped).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: docker://HOST[:PORT]/REPO[:TAG] or …/REPO@sha256:….
    pub source: RegistryRef,
    /// The OCI layout to write (created, or added to).
    #[arg(long, short)]
    pub output: PathBuf,
    /// The platform to pick from an index [default: linux/amd64]; a
    /// single-platform image of another platform is then an error.
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Speak plain HTTP to this registry (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    #[command(flatten)]
    pub network: Network,
    /// Print a JSON report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write: DIR (DIR/ingot.key and DIR/ingot.pub) or a PREFIX
    /// (PREFIX.key and PREFIX.pub).
    #[arg(long, short, value_name = "DIR|PREFIX")]
    pub output: PathBuf,
    /// Print the paths written as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image: docker://HOST[:PORT]/REPO[:TAG|@DIGEST], or
    /// oci:PATH[:TAG|@DIGEST] with --identity.
    #[arg(value_parser = sign_image)]
    pub image: ImageRef,
    /// The private key (`ingot keygen`, or cosign's).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The repository the image is for, HOST[:PORT]/REPO: required for a
    /// layout, refused for a docker:// image (its repository is its identity).
    #[arg(long, value_name = "HOST/REPO")]
    pub identity: Option<Identity>,
    /// Speak plain HTTP to this registry (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure: Vec<Host>,
    #[command(flatten)]
    pub network: Network,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The layout or image: oci:PATH, oci:PATH:TAG or oci:PATH@DIGEST;
    /// with --key, also docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    #[arg(value_parser = verify_image)]
    pub image: ImageRef,
    /// Require a signature that verifies under this public key (PEM)
    /// and names the image; see below.
    #[arg(long, value_name = "PUB", conflicts_with = "rebuild")]
    pub key: Option<PathBuf>,
    /// The repository the signature must name: required for a layout;
    /// for a docker:// image, its own unless given.
    #[arg(long, value_name = "HOST/REPO", requires = "key")]
    pub identity: Option<Identity>,
    /// Fail (exit 1) unless the image is this manifest or index, naming
    /// both digests; in a layout of several images without a tag, verify
    /// the one of this digest.
    #[arg(long, value_name = "sha256:HEX")]
    pub digest: Option<Digest>,
    /// After the fsck, rebuild the image from this recipe (file or
    /// directory) with the settings the image records, in a temp
    /// directory, and fail unless the rebuild has the image's digest.
    #[arg(long, value_name = "RECIPE|DIR")]
    pub rebuild: Option<PathBuf>,
    /// The build cache the rebuild uses [default: $XDG_CACHE_HOME/ingot,
    /// else ~/.cache/ingot].
    #[arg(long, value_name = "DIR", requires = "rebuild")]
    pub cache: Option<PathBuf>,
    /// Rebuild every layer afresh, neither reading nor filling the cache.
    #[arg(long, conflicts_with = "cache", requires = "rebuild")]
    pub no_cache: bool,
    /// Speak plain HTTP to this registry, for the rebuild's docker://
    /// bases (repeatable).
    #[arg(long, value_name = "HOST[:PORT]", requires = "rebuild")]
    pub insecure: Vec<Host>,
    /// Download Debian packages from another copy of an archive, for the
    /// rebuild (as `ingot build --mirror`).
    #[arg(long, value_name = "[URL=]MIRROR", requires = "rebuild")]
    pub mirror: Vec<String>,
    #[command(flatten)]
    pub network: Network,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ingot audit --help`'s closing text, with the rules from the seal's
/// own table, so the help cannot drift from what is checked.
fn audit_help() -> String {
    format!(
        concat!(
            "Examples:\n  \
             ingot audit oci:out/hello:1.2.0\n  \
             ingot audit docker-archive:image.tar --json\n  \
             ingot audit docker://registry.example.com/team/app:2.0\n  \
             ingot audit --list-rules --json\n\n",
            image_help!(),
            "\n\n\
             The image may be built by ingot or not. Each layer is read once, as a stream.\n\
             Exit 1 when the image is not sealed. --json names the image and its digest.\n\n\
             {}\n\
             Exceptions: an ingot image records its recipe's seal.allow in its manifest.\n\
             Anyone who writes a manifest can write that, so audit shows them with their\n\
             reasons but passes nothing on the image's word: --accept-declared honours them\n\
             all; --allow FILE honours the auditor's own list, each entry\n  \
             - {{ rule: setuid, path: /usr/bin/ping, reason: \"raw sockets\", digest: sha256:… }}\n\
             where digest (optional) binds it to one image. A docker-archive, which has no\n\
             manifest, declares none."
        ),
        seal::render_rules()
    )
}

/// How progress shows on stderr (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// One line redrawn in place on a terminal, plain lines elsewhere.
    Auto,
    /// A plain line at most every second, for logs that keep every line.
    Plain,
    /// No progress; log lines still show unless --quiet.
    None,
}

/// Archive formats `ingot export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `docker save`'s tarball, for `docker load` and `podman load`.
    DockerArchive,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// How much the cache holds.
    Du,
    /// Empty the cache.
    Prune,
}

/// `$XDG_CACHE_HOME/ingot`, else `$HOME/.cache/ingot`.
#[allow(clippy::disallowed_methods)] // the environment enters here
fn default_cache_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty());
    let base = xdg
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ingot"))
}

/// Reads SOURCE_DATE_EPOCH: unset or empty means 0; anything else must be
/// a whole number of seconds, no later than the last second of year 9999
/// (what the image's RFC 3339 `created` can hold, and read back).
pub fn source_date_epoch(value: Option<&str>) -> Result<u64> {
    let v = match value.map(str::trim) {
        None | Some("") => return Ok(0),
        Some(v) => v,
    };
    let epoch: u64 = v.parse().map_err(|_| {
        Error::Usage(format!(
            "SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds since 1970"
        ))
    })?;
    if epoch > crate::image::MAX_EPOCH {
        return Err(Error::Usage(format!(
            "SOURCE_DATE_EPOCH={v} is after {} ({}), the last time an image can record",
            crate::image::rfc3339(crate::image::MAX_EPOCH),
            crate::image::MAX_EPOCH
        )));
    }
    Ok(epoch)
}

/// Reads INGOT_MAX_LAYER_ENTRIES, the bound on entries in one layer (or any
/// tar ingot reads: a `.deb`'s, a docker-archive, an archive in an image):
/// unset or empty keeps [`bounds::DEFAULT_MAX_ENTRIES`]; anything else must
/// be a positive whole number. It changes no digest, only how large a
/// layer ingot agrees to read.
pub fn max_layer_entries(value: Option<&str>) -> Result<u64> {
    match value.map(str::trim) {
        None | Some("") => Ok(bounds::DEFAULT_MAX_ENTRIES),
        Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            Error::Usage(format!(
                "{}={v:?} is not a positive whole number of entries",
                bounds::MAX_ENTRIES_VAR
            ))
        }),
    }
}

/// The variable that moves the fixed system paths ingot reads credentials
/// from (`/run/containers/UID/auth.json`) under another root, as
/// containers/image's `RootForImplicitAbsolutePaths` does: for tests and
/// chroots.
pub const IMPLICIT_ROOT_VAR: &str = "INGOT_ROOT_FOR_IMPLICIT_PATHS";

/// Where registry credentials are, from the environment `var` reads, in
/// the order containers-auth.json(5) searches, then Docker's file:
/// 1. the primary file: `REGISTRY_AUTH_FILE` (the explicit override), else
///    `$XDG_RUNTIME_DIR/containers/auth.json`, else
///    `/run/containers/UID/auth.json`;
/// 2. `$XDG_CONFIG_HOME/containers/auth.json`, else
///    `~/.config/containers/auth.json`;
/// 3. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
///
/// The first file that knows the registry wins.
pub fn credential_sources(var: impl Fn(&str) -> Option<OsString>, uid: u32) -> CredentialSources {
    let var = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = var("HOME");
    let mut files = Vec::new();
    files.push(match (var("REGISTRY_AUTH_FILE"), var("XDG_RUNTIME_DIR")) {
        (Some(file), _) => file,
        (None, Some(dir)) => dir.join("containers/auth.json"),
        (None, None) => var(IMPLICIT_ROOT_VAR)
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(format!("run/containers/{uid}/auth.json")),
    });
    let config = var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
    files.extend(config.map(|c| c.join("containers/auth.json")));
    match var("DOCKER_CONFIG") {
        Some(dir) => files.push(dir.join("config.json")),
        None => files.extend(home.map(|h| h.join(".docker/config.json"))),
    }
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(f.clone()));
    CredentialSources { files }
}

/// The `--insecure` hosts, the credentials the environment names, and
/// the time limits.
fn access(insecure: Vec<Host>, network: &Network) -> Access {
    // The one place the environment names credential files (clippy.toml).
    #[allow(clippy::disallowed_methods)]
    let credentials = credential_sources(|name| std::env::var_os(name), current_uid());
    Access {
        insecure,
        credentials,
        timeouts: network.timeouts(),
    }
}

/// The real user id of this process, which names its
/// `/run/containers/UID` directory.
fn current_uid() -> u32 {
    // SAFETY: getuid(2) takes nothing, always succeeds and touches no memory.
    unsafe { libc::getuid() }
}

/// `gc`'s layout: an `oci:` reference, nothing else.
fn gc_layout(s: &str) -> std::result::Result<OciRef, String> {
    oci_layout(s, "gc cleans OCI layouts: oci:PATH")
}

/// A tag `--tag` adds: what OCI allows (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
/// NEWBASE, parsed as a recipe's `base:` is.
fn base_ref(s: &str) -> std::result::Result<crate::base::BaseRef, String> {
    s.parse()
}

fn oci_tag(s: &str) -> std::result::Result<String, String> {
    if crate::image::reference::valid_tag(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a valid tag: letters, digits, '_', '.', '-', not starting with '.' or '-', at most 128 characters"
        ))
    }
}

/// `build --push`'s destination: a repository; the tags are the build's.
/// `--cache-from` and `--cache-to`: a repository; entries are tagged by key.
fn cache_repository(s: &str) -> std::result::Result<RegistryRef, String> {
    match s.parse::<ImageRef>()? {
        ImageRef::Docker(r) if r.tag.is_none() && r.digest.is_none() => Ok(r),
        ImageRef::Docker(r) => Err(format!(
            "{r}: a cache is a repository, docker://HOST/REPO; its entries are tagged by key"
        )),
        other => Err(format!(
            "a cache registry is docker://HOST/REPO, not {other}"
        )),
    }
}

fn push_repository(s: &str) -> std::result::Result<RegistryRef, String> {
    match s.parse::<ImageRef>()? {
        ImageRef::Docker(r) if r.tag.is_none() && r.digest.is_none() => Ok(r),
        ImageRef::Docker(r) => Err(format!(
            "{r}: push to docker://HOST/REPO; the tags are the version and --tag"
        )),
        other => Err(format!("--push takes docker://HOST/REPO, not {other}")),
    }
}

/// `push`'s source: an image in an OCI layout.
fn push_source(s: &str) -> std::result::Result<OciRef, String> {
    oci_layout(s, "push reads an OCI layout: oci:PATH[:TAG]")
}

/// `verify`'s layout (or one image of it), or a registry image.
fn verify_image(s: &str) -> std::result::Result<ImageRef, String> {
    match s.parse::<ImageRef>()? {
        ImageRef::DockerArchive(_) => Err(format!(
            "verify checks OCI layouts (oci:PATH, oci:PATH:TAG or oci:PATH@sha256:…) \
             and, with --key, registry images (docker://…), not {s}"
        )),
        other => Ok(other),
    }
}

/// `sign`'s image: a registry image or one of a layout.
fn sign_image(s: &str) -> std::result::Result<ImageRef, String> {
    match s.parse::<ImageRef>()? {
        ImageRef::DockerArchive(_) => Err(format!(
            "sign signs docker://HOST/REPO[:TAG] or oci:PATH[:TAG] images, not {s}"
        )),
        other => Ok(other),
    }
}

/// An `oci:` image reference; any other kind is refused with what the
/// command takes, and what it was given.
fn oci_layout(s: &str, what: &str) -> std::result::Result<OciRef, String> {
    match s.parse::<ImageRef>()? {
        ImageRef::Oci(oci) => Ok(oci),
        other => Err(format!("{what}, not {other}")),
    }
}

impl Command {
    /// Whether the command was asked for `--json`.
    fn json(&self) -> bool {
        match self {
            Command::Build(a) => a.json,
            Command::Plan(a) => a.json,
            Command::Lock(a) => a.json,
            Command::Outdated(a) => a.json,
            Command::Validate(a) => a.json,
            Command::Audit(a) => a.json,
            Command::Gc(a) => a.json,
            Command::Cache(a) => a.json,
            Command::Inspect(a) => a.json,
            Command::Diff(a) => a.json,
            Command::Sbom(_) => false,
            Command::Export(a) => a.json,
            Command::Bind(a) => a.json,
            Command::Push(a) => a.json,
            Command::Pull(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Rebase(a) => a.json,
            Command::Keygen(a) => a.json,
            Command::Sign(a) => a.json,
            Command::Completions(_) => false,
        }
    }
}

/// A failure as `--json` reports it: `{"error": {"kind", "message", "file",
/// "line", "column"}}`, the last three null unless it is at a place in a
/// recipe, and `problems` for an error that lists several.
pub fn error_json(err: &Error) -> String {
    let at = err.recipe_error();
    let message = match err {
        // The position is given apart.
        Error::Recipe(e) => e.message.clone(),
        other => other.to_string(),
    };
    let mut error = serde_json::json!({
        "kind": err.kind(),
        "message": message,
        "file": at.map(|e| e.file.display().to_string()),
        "line": at.and_then(|e| e.pos).map(|p| p.line),
        "column": at.and_then(|e| e.pos).map(|p| p.col),
    });
    if !err.problems().is_empty() {
        error["problems"] = serde_json::json!(err.problems());
    }
    let object = serde_json::json!({ "error": error });
    serde_json::to_string_pretty(&object).unwrap_or_else(|_| object.to_string())
}

/// The `--json` report of a command line clap refused (`kind: usage`),
/// when `args` asked for JSON; None for other refusals and for `--help`
/// and `--version`, which are not failures.
pub fn usage_error_json(
    err: &clap::Error,
    args: impl IntoIterator<Item = OsString>,
) -> Option<String> {
    let json = args
        .into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if !json || !err.use_stderr() {
        return None;
    }
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    Some(error_json(&Error::Usage(message.to_string())))
}

/// Runs a parsed command line, writing results to `stdout` and logs to
/// stderr. With `--json`, a failure that printed nothing on stdout is
/// reported there too ([`error_json`]); the exit code stays the error's.
pub fn run(cli: Cli, stdout: &mut dyn Write) -> Result<()> {
    let json = cli.command.json();
    let mut watched = Watched {
        inner: stdout,
        written: false,
    };
    let result = run_command(cli, &mut watched);
    if let Err(err) = &result
        && json
        && !watched.written
    {
        // Best effort: the error also goes to stderr, and sets the code.
        let _ = writeln!(watched.inner, "{}", error_json(err));
    }
    result
}

/// A writer that remembers whether anything went through it.
struct Watched<'a> {
    inner: &'a mut dyn Write,
    written: bool,
}

impl Write for Watched<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written |= !buf.is_empty();
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn run_command(cli: Cli, stdout: &mut dyn Write) -> Result<()> {
    // The one place the bound on tar entries enters (clippy.toml).
    #[allow(clippy::disallowed_methods)]
    let entries = match cli.max_layer_entries {
        Some(n) => n,
        None => max_layer_entries(std::env::var(bounds::MAX_ENTRIES_VAR).ok().as_deref())?,
    };
    bounds::set_max_entries(entries);
    let out = &mut Out {
        stdout,
        quiet: cli.quiet,
        mode: cli.progress,
        progress: progress_for(cli.quiet, cli.progress),
    };
    match cli.command {
        Command::Build(args) => build(args, out),
        Command::Plan(args) => plan(args, out),
        Command::Lock(args) => lock(args, out),
        Command::Outdated(args) => outdated(args, out),
        Command::Validate(args) => validate(args, out),
        Command::Audit(args) => audit(args, out),
        Command::Gc(args) => gc(args, out),
        Command::Cache(args) => cache(args, out),
        Command::Inspect(args) => inspect(args, out),
        Command::Diff(args) => diff(args, out),
        Command::Sbom(args) => sbom(args, out),
        Command::Export(args) => export(args, out),
        Command::Bind(args) => bind(args, out),
        Command::Push(args) => push(args, out),
        Command::Pull(args) => pull(args, out),
        Command::Verify(args) => verify(args, out),
        Command::Rebase(args) => rebase(args, out),
        Command::Keygen(args) => keygen(args, out),
        Command::Sign(args) => sign(args, out),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "ingot", &mut *out.stdout);
            Ok(())
        }
    }
}

/// The one recipe `paths` name, when they name one: a file, or a
/// directory holding recipe.yaml. Anything else is a fleet.
fn single_recipe(paths: &[PathBuf]) -> Option<PathBuf> {
    match paths {
        [one] if !one.is_dir() || one.join(RECIPE_FILE).is_file() => Some(recipe_file(one.clone())),
        _ => None,
    }
}

/// SOURCE_DATE_EPOCH: the one place the environment enters a build
/// (clippy.toml).
fn build_epoch() -> Result<u64> {
    #[allow(clippy::disallowed_methods)]
    source_date_epoch(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())
}

fn build(args: BuildArgs, out: &mut Out) -> Result<()> {
    let Some(file) = single_recipe(&args.recipes) else {
        return build_fleet(args, out);
    };
    let epoch = build_epoch()?;
    let recipe = Recipe::load(&file)?;
    let output = args
        .output
        .unwrap_or_else(|| PathBuf::from("out").join(&recipe.spec.name));
    let settings = pipeline::Settings {
        epoch,
        compression: args.compression,
        revision: args.revision,
        source: args.source,
    };
    let mut sources = build_sources(
        args.cache,
        args.no_cache,
        args.insecure,
        args.mirror,
        &args.network,
    );
    sources.remote_cache = remote_cache(args.cache_from, args.cache_to, &sources);
    let emit = pipeline::Emit {
        output,
        locked: args.locked,
        tags: args.tags,
        replace: args.replace,
        attest: !args.no_attest,
    };
    let progress = out.progress();
    let log = &mut |line: &str| out.log(line);
    let report = pipeline::build(&recipe, &settings, &sources, &emit, &progress, log)?;
    if report.unchanged {
        out.log(&format!(
            "{} already holds {} as {}: nothing changed",
            report.layout.display(),
            report.digest,
            report.tags.join(", ")
        ));
    }
    if let Some(dest) = &args.push {
        let source = OciRef {
            path: report.layout.clone(),
            selector: Selector::Tag(report.version.clone()),
        };
        let options = PushOptions {
            also_tags: report.tags.clone(),
            keep_tags: !args.replace,
            ..PushOptions::default()
        };
        let to = dest.with_tag(Some(&report.version));
        let pushed =
            crate::commands::push::push(&source, &to, &options, &sources.registry, out.progress())?;
        out.log(&format!(
            "pushed {} {} ({})",
            dest,
            pushed.digest,
            report.tags.join(", ")
        ));
    }
    out.report(args.json, &report, |r| format!("{}\n", r.digest))
}

/// `ingot rebase IMAGE --onto NEWBASE`: see `commands::rebase`.
fn rebase(args: RebaseArgs, out: &mut Out) -> Result<()> {
    let recipe = args
        .recipe
        .map(|path| Recipe::load(&recipe_file(path)))
        .transpose()?;
    let sources = build_sources(
        args.cache,
        args.no_cache,
        args.insecure,
        Vec::new(),
        &args.network,
    );
    let emit = pipeline::Emit {
        output: args.output,
        locked: false,
        tags: args.tags,
        replace: args.replace,
        attest: !args.no_attest,
    };
    let progress = out.progress();
    let request = crate::commands::rebase::Request {
        image: &args.image,
        onto: &args.onto,
        recipe: recipe.as_ref(),
        emit: &emit,
        sources: &sources,
        progress: &progress,
    };
    let log = &mut |line: &str| out.log(line);
    let report = crate::commands::rebase::rebase(&request, log)?;
    out.log(&format!(
        "rebased onto {}: {} layers reused ({}), {} rebuilt ({})",
        report.new_base,
        report.reused.len(),
        report.reused.join(", "),
        report.rebuilt.len(),
        report.rebuilt.join(", ")
    ));
    out.report(args.json, &report, |r| format!("{}\n", r.new_digest))
}

/// `ingot build DIR…`: every recipe found, in dependency order, several
/// at once; one line (or JSON object) per recipe on stdout.
fn build_fleet(args: BuildArgs, out: &mut Out) -> Result<()> {
    if args.push.is_some() {
        return Err(Error::Usage(
            "--push names one repository: build a fleet without it, then `ingot push` each layout"
                .into(),
        ));
    }
    let settings = pipeline::Settings {
        epoch: build_epoch()?,
        compression: args.compression,
        revision: args.revision,
        source: args.source,
    };
    let root = args.output.unwrap_or_else(|| PathBuf::from("out"));
    let fleet = fleet::Fleet::new(fleet::discover(&args.recipes)?, &root)?;
    let mut sources = build_sources(
        args.cache,
        args.no_cache,
        args.insecure,
        args.mirror,
        &args.network,
    );
    sources.remote_cache = remote_cache(args.cache_from, args.cache_to, &sources);
    let emit = pipeline::Emit {
        output: root,
        locked: args.locked,
        tags: args.tags,
        replace: args.replace,
        attest: !args.no_attest,
    };
    let jobs = match args.jobs {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    out.log(&format!(
        "{} recipes in {} waves, {jobs} at once",
        fleet.members.len(),
        fleet.waves().len()
    ));
    // The one clock of the run (clippy.toml keeps it out of the library).
    let start = std::time::Instant::now();
    let clock = move || start.elapsed().as_secs_f64();
    let (quiet, mode) = (out.quiet, out.mode);
    let progress = move |name: &str| fleet_progress(quiet, mode, name);
    let log = move |name: &str, line: &str| {
        if !quiet {
            eprintln!("{name}: {line}");
        }
    };
    let options = fleet::build::Options {
        settings: &settings,
        sources: &sources,
        emit: &emit,
        jobs,
    };
    let hooks = fleet::build::Hooks {
        clock: &clock,
        progress: &progress,
        log: &log,
    };
    let outcomes = fleet::build::run(&fleet, &options, &hooks);
    for o in &outcomes {
        let line = if args.json {
            serde_json::to_string(o).map_err(|e| Error::Failed(format!("encoding JSON: {e}")))?
        } else {
            let digest = o.digest.map_or("-".to_string(), |d| d.to_string());
            format!(
                "{} {} {} {digest}",
                o.status.as_str(),
                o.name,
                o.version.as_deref().unwrap_or("-")
            )
        };
        out.write(format!("{line}\n").as_bytes())?;
    }
    for o in outcomes.iter().filter(|o| !o.ok()) {
        if let Some(error) = &o.error {
            out.log(&format!("{}: {error}", o.name));
        }
    }
    fleet::build::verdict(&outcomes)
}

/// The progress of one recipe of a fleet: plain lines prefixed with its
/// name (several builds cannot share one line redrawn in place).
fn fleet_progress(quiet: bool, mode: ProgressMode, name: &str) -> Progress {
    let name = name.to_string();
    let sink = move |line: &str| eprintln!("{name}: {line}");
    match mode {
        _ if quiet => Progress::quiet(),
        ProgressMode::None => Progress::logs_only(sink),
        ProgressMode::Auto | ProgressMode::Plain => Progress::new(sink).every(progress_interval()),
    }
}

fn plan(args: PlanArgs, out: &mut Out) -> Result<()> {
    let settings = pipeline::Settings {
        epoch: build_epoch()?,
        compression: args.compression,
        revision: args.revision,
        source: args.source,
    };
    let root = args.output.unwrap_or_else(|| PathBuf::from("out"));
    let fleet = fleet::Fleet::new(fleet::discover(&args.recipes)?, &root)?;
    let sources = build_sources(args.cache, false, args.insecure, Vec::new(), &args.network);
    let plan = fleet::plan::plan(&fleet, &settings, &sources);
    out.report(args.json, &plan, fleet::plan::render)
}

/// Where a build (or `verify --rebuild`) takes bases, packages and cached
/// layers from: `--cache` (else the default cache) unless `--no-cache`.
fn build_sources(
    cache: Option<PathBuf>,
    no_cache: bool,
    insecure: Vec<Host>,
    mirror: Vec<String>,
    network: &Network,
) -> pipeline::Sources {
    pipeline::Sources {
        cache: if no_cache {
            None
        } else {
            cache.or_else(default_cache_dir)
        },
        registry: access(insecure, network),
        mirrors: mirrors(mirror),
        network: network.timeouts(),
        remote_cache: None,
    }
}

/// The cache registries of `--cache-from` and `--cache-to`, reached as
/// the build reaches registries; none without a local cache to fill.
fn remote_cache(
    from: Vec<RegistryRef>,
    to: Vec<RegistryRef>,
    sources: &pipeline::Sources,
) -> Option<std::sync::Arc<crate::registry::cache::RemoteCache>> {
    if (from.is_empty() && to.is_empty()) || sources.cache.is_none() {
        return None;
    }
    Some(std::sync::Arc::new(
        crate::registry::cache::RemoteCache::new(from, to, sources.registry.clone()),
    ))
}

/// The mirror specs of `--mirror`, else of INGOT_MIRROR.
fn mirrors(given: Vec<String>) -> Vec<String> {
    if !given.is_empty() {
        return given;
    }
    #[allow(clippy::disallowed_methods)]
    let env = std::env::var("INGOT_MIRROR").unwrap_or_default();
    env.split_whitespace().map(str::to_string).collect()
}

fn lock(args: LockArgs, out: &mut Out) -> Result<()> {
    let sources = build_sources(args.cache, false, args.insecure, args.mirror, &args.network);
    if args.update {
        return staleness(&args.recipes, &sources, true, args.json, out);
    }
    let [recipe] = <[PathBuf; 1]>::try_from(args.recipes)
        .map_err(|_| Error::Usage("name one recipe to lock, or several with --update".into()))?;
    let recipe = Recipe::load(&recipe_file(recipe))?;
    let lock = pipeline::lock(&recipe, &sources, &mut |line: &str| out.log(line))?;
    let packages: usize = lock.packages.iter().map(|s| s.packages.len()).sum();
    out.log(&format!(
        "wrote {} ({} pins, {packages} packages)",
        crate::lock::path_for(&recipe.file).display(),
        lock.pins.len()
    ));
    out.json_only(args.json, &lock)
}

fn outdated(args: OutdatedArgs, out: &mut Out) -> Result<()> {
    let sources = build_sources(args.cache, false, args.insecure, args.mirror, &args.network);
    staleness(&args.recipes, &sources, false, args.json, out)
}

/// `outdated`, and `lock --update` (`update`): every recipe found under
/// `paths` checked, the report printed; then exit 2 if one failed, else 1
/// if one is outdated or unlocked (for `outdated`), else 0.
fn staleness(
    paths: &[PathBuf],
    sources: &pipeline::Sources,
    update: bool,
    json: bool,
    out: &mut Out,
) -> Result<()> {
    use crate::commands::outdated::{self, LockState};
    let recipes = fleet::discover(paths)?;
    let mut reports = Vec::new();
    for file in &recipes {
        out.log(&format!("resolving {}", file.display()));
        let mut log = |line: &str| out.log(line);
        reports.push(outdated::check(file, sources, update, &mut log));
    }
    out.report(json, &reports, |r| outdated::render(r))?;
    let named = |state: LockState| -> Vec<&str> {
        let with = reports.iter().filter(|r| r.lock == state);
        with.map(|r| r.recipe.as_str()).collect()
    };
    let failed = named(LockState::Failed);
    if !failed.is_empty() {
        return Err(Error::Trouble(Box::new(Error::Failed(format!(
            "{} of {} recipes could not be checked: {}",
            failed.len(),
            reports.len(),
            failed.join(", ")
        )))));
    }
    let stale: Vec<&str> = [named(LockState::Outdated), named(LockState::Missing)].concat();
    if !update && !stale.is_empty() {
        return Err(Error::Failed(format!(
            "{} of {} recipes have outdated or missing locks: {} (ingot lock --update moves them)",
            stale.len(),
            reports.len(),
            stale.join(", ")
        )));
    }
    Ok(())
}

/// A recipe named by its directory is the directory's `recipe.yaml`.
fn recipe_file(path: PathBuf) -> PathBuf {
    if path.is_dir() {
        path.join(RECIPE_FILE)
    } else {
        path
    }
}

/// The recipe file a directory names.
const RECIPE_FILE: &str = fleet::RECIPE_FILE;

fn validate(args: ValidateArgs, out: &mut Out) -> Result<()> {
    use crate::commands::validate as validating;
    let options = validating::Options {
        locked: args.locked,
    };
    let total = args.recipes.len();
    let mut invalid = 0;
    for path in args.recipes {
        let report = validating::validate(&recipe_file(path), options);
        invalid += usize::from(!report.ok);
        let text = if args.json {
            let mut line = serde_json::to_string(&report)
                .map_err(|e| Error::Failed(format!("encoding JSON: {e}")))?;
            line.push('\n');
            line
        } else if report.ok {
            format!("{}: ok\n", report.path.display())
        } else {
            report.errors.iter().map(|p| format!("{p}\n")).collect()
        };
        out.write(text.as_bytes())?;
    }
    if invalid == 0 {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{invalid} of {total} {} invalid",
        if total == 1 {
            "recipe is"
        } else {
            "recipes are"
        }
    )))
}

fn audit(args: AuditArgs, out: &mut Out) -> Result<()> {
    let Some(image) = args.image.filter(|_| !args.list_rules) else {
        let rules = seal::Policy::current();
        return out.report(args.json, &rules, |_| seal::render_rules());
    };
    let access = access(args.reach.insecure, &args.reach.network);
    use crate::commands::audit as auditing;
    let trust = auditing::Trust {
        accept_declared: args.accept_declared,
        allow: match &args.allow {
            Some(file) => auditing::read_allow_file(file)?,
            None => Vec::new(),
        },
    };
    let audit = auditing::audit(
        &image,
        &PlatformChoice::from_flag(args.reach.platform),
        &access,
        &out.progress(),
        &trust,
    )?;
    out.report(args.json, &audit, auditing::render)?;
    // Like verify: the report, on stdout, is the result; the error
    // only sets exit 1 and says so on stderr.
    if audit.report.is_sealed() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "{image} is not sealed: {} violations",
            audit.report.violations.len()
        )))
    }
}

fn gc(args: GcArgs, out: &mut Out) -> Result<()> {
    let collected = crate::store::gc::collect(&args.image.path, args.dry_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    out.report(args.json, &collected, |c| {
        let mut text = format!(
            "{verb} {} blobs ({} bytes), kept {}\n",
            c.removed.len(),
            c.bytes,
            c.kept
        );
        for path in &c.litter {
            text.push_str(&format!(
                "{verb} {}, left by a killed build\n",
                path.display()
            ));
        }
        text
    })
}

fn cache(args: CacheArgs, out: &mut Out) -> Result<()> {
    let root = args.cache.or_else(default_cache_dir).ok_or_else(|| {
        Error::Usage("no cache directory: set --cache, XDG_CACHE_HOME or HOME".into())
    })?;
    let store = crate::store::cache::Cache::open(&root)?;
    let (verb, usage) = match args.action {
        CacheAction::Du => ("holds", store.usage()?),
        CacheAction::Prune => ("freed", store.prune()?),
    };
    // People read sizes; --json keeps the exact bytes.
    out.report(args.json, &usage, |u| {
        let size = match u.bytes {
            n if n < 1024 => format!("{n} bytes"),
            n => format!("{} ({n} bytes)", crate::progress::bytes(n)),
        };
        format!(
            "{} {verb} {size}: {} blobs, {} cached layers\n",
            root.display(),
            u.blobs,
            u.layers
        )
    })
}

fn inspect(args: InspectArgs, out: &mut Out) -> Result<()> {
    let access = access(args.reach.insecure, &args.reach.network);
    let platform = PlatformChoice::from_flag(args.reach.platform);
    let inspection = inspect::inspect(&args.image, &platform, &access, &out.progress())?;
    out.report(args.json, &inspection, inspect::render)
}

fn diff(args: DiffArgs, out: &mut Out) -> Result<()> {
    use crate::commands::diff as differ;
    let access = access(args.reach.insecure, &args.reach.network);
    let platform = PlatformChoice::from_flag(args.reach.platform);
    let diff = differ::diff(&args.old, &args.new, &platform, &access, &out.progress())?;
    out.report(args.json, &diff, differ::render)?;
    // As diff(1): the report is the result; exit 1 says they differ.
    if diff.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "{} and {} differ",
            args.old, args.new
        )))
    }
}

fn sbom(args: SbomArgs, out: &mut Out) -> Result<()> {
    let access = access(args.reach.insecure, &args.reach.network);
    let platform = PlatformChoice::from_flag(args.reach.platform);
    let progress = out.progress();
    let write = |w: &mut dyn Write| {
        crate::commands::sbom::sbom(&args.image, &platform, &access, &progress, w)
    };
    match args.output.as_deref().filter(|o| !is_stdout(o)) {
        Some(path) => crate::store::layout::replace_file_with(path, write),
        None => write(&mut out.stdout).and_then(|()| {
            out.stdout
                .flush()
                .map_err(|e| Error::Failed(format!("writing the SBOM to stdout: {e}")))
        }),
    }
}

/// `-o -`: the result goes to stdout.
fn is_stdout(output: &std::path::Path) -> bool {
    output == std::path::Path::new("-")
}

/// Refuses `-o -` where stdout cannot take the result: with `--json`,
/// which wants stdout too, and, for binary output, on a terminal (as
/// `docker save` does).
fn check_stdout(json: bool, binary: Option<&str>) -> Result<()> {
    if json {
        return Err(Error::Usage(
            "-o - writes the result to stdout, where --json would write the report: drop one"
                .into(),
        ));
    }
    if let Some(what) = binary
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        return Err(Error::Usage(format!(
            "refusing to write {what} to a terminal: redirect stdout, or name a file with -o"
        )));
    }
    Ok(())
}

fn export(args: ExportArgs, out: &mut Out) -> Result<()> {
    // The one format there is; another must be handled here.
    let ExportFormat::DockerArchive = args.format;
    let to_stdout = is_stdout(&args.output);
    if to_stdout {
        check_stdout(args.json, Some("a tar archive"))?;
    }
    let access = access(args.reach.insecure, &args.reach.network);
    let progress = out.progress();
    let request = export::Request {
        image: &args.image,
        platform: &PlatformChoice::from_flag(args.reach.platform),
        access: &access,
        progress: &progress,
        repo_tag: args.tag,
        output: &args.output,
    };
    let log = &mut out.logger();
    if to_stdout {
        export::export_to(&request, &mut *out.stdout, log)?;
        return Ok(());
    }
    let report = export::export(&request, log)?;
    out.json_only(args.json, &report)
}

fn bind(args: BindArgs, out: &mut Out) -> Result<()> {
    let access = access(args.reach.insecure, &args.reach.network);
    // `{ env: VAR }` values: the one place bind reads the environment.
    #[allow(clippy::disallowed_methods)]
    let env = |var: &str| std::env::var(var).ok();
    let request = bind::Request {
        image: &args.image,
        platform: &PlatformChoice::from_flag(args.reach.platform),
        access: &access,
        progress: &out.progress(),
        values: args.values.as_deref(),
        format: args.format,
        output: &args.output,
        repo: args.repo.as_deref(),
        name: args.name.as_deref(),
        env: &env,
    };
    let to_stdout = is_stdout(&args.output);
    if to_stdout {
        check_stdout(args.json, None)?;
    }
    let report = if to_stdout {
        bind::bind_to(&request, &mut *out.stdout)?
    } else {
        bind::bind(&request)?
    };
    if report.rootfs.is_some_and(|r| !r.owners) {
        out.log(
            "warning: not root, so the bundle's files are owned by the caller, not as the image says",
        );
    }
    out.log(&format!(
        "bound {} ({} params) into {}",
        report.digest,
        report.params.len(),
        if to_stdout {
            "stdout".to_string()
        } else {
            args.output.display().to_string()
        }
    ));
    out.json_only(args.json, &report)
}

fn push(args: PushArgs, out: &mut Out) -> Result<()> {
    let options = PushOptions {
        from_repositories: args.from_repo,
        ..PushOptions::default()
    };
    let access = access(args.insecure, &args.network);
    let (source, dest) = (&args.source, &args.destination);
    let report = crate::commands::push::push(source, dest, &options, &access, out.progress())?;
    out.log(&format!("pushed {} {}", report.reference, report.digest));
    for r in &report.referrers {
        out.log(&format!(
            "pushed {} {} about {}{}",
            r.artifact_type.as_deref().unwrap_or("artifact"),
            r.digest,
            r.subject,
            r.fallback_tag
                .as_ref()
                .map_or(String::new(), |t| format!(", listed under tag {t}"))
        ));
    }
    out.report(args.json, &report, |r| format!("{}\n", r.digest))
}

fn pull(args: PullArgs, out: &mut Out) -> Result<()> {
    let access = access(args.insecure, &args.network);
    let (source, output) = (&args.source, &args.output);
    let platform = PlatformChoice::from_flag(args.platform);
    let report = crate::commands::pull::pull(source, output, &platform, &access, out.progress())?;
    out.log(&format!(
        "pulled {} into {} ({} blobs downloaded{})",
        report.reference,
        output.display(),
        report.downloaded.blobs,
        match report.referrers.len() {
            0 => String::new(),
            n => format!(", {n} referrers"),
        }
    ));
    out.report(args.json, &report, |r| format!("{}\n", r.digest))
}

fn verify(args: VerifyArgs, out: &mut Out) -> Result<()> {
    let key = args
        .key
        .as_deref()
        .map(signing::load_public_key)
        .transpose()?;
    let image = match &args.image {
        ImageRef::Oci(image) => image.clone(),
        ImageRef::Docker(image) => return verify_registry(&args, image, key, out),
        ImageRef::DockerArchive(_) => unreachable!("refused by verify_image"),
    };
    if let Some(recipe) = args.rebuild.clone() {
        return rebuild(args, &image, recipe, out);
    }
    let identity = match (&key, &args.identity) {
        (Some(_), None) => {
            return Err(Error::Usage(format!(
                "{image}: a layout has no repository: give the identity its signature names, \
                 --identity HOST/REPO"
            )));
        }
        _ => args.identity.clone(),
    };
    let report = verify::verify(&image.path, &image.selector, args.digest.as_ref())?;
    let (Some(key), Some(identity), true) = (key, identity, report.is_ok()) else {
        out.report(args.json, &report, verify::render)?;
        // The report is the result, so it goes to stdout either way; the
        // error only sets the exit code and a one-line note on stderr.
        return if report.is_ok() {
            Ok(())
        } else {
            Err(Error::unverified_problems(report.problems.len()))
        };
    };
    match signing::verify_layout(&image, &identity, &key) {
        Ok(signature) => {
            #[derive(serde::Serialize)]
            struct Both<'a> {
                #[serde(flatten)]
                fsck: &'a verify::Report,
                signature: &'a signing::SignatureReport,
            }
            let both = Both {
                fsck: &report,
                signature: &signature,
            };
            out.report(args.json, &both, |b| {
                format!(
                    "{}{}",
                    verify::render(b.fsck),
                    render_signature(b.signature)
                )
            })
        }
        Err(e) => {
            out.report(args.json, &report, verify::render)?;
            Err(e)
        }
    }
}

/// `verify docker://… --key PUB`: the signature check alone.
fn verify_registry(
    args: &VerifyArgs,
    image: &RegistryRef,
    key: Option<crate::sign::PublicKey>,
    out: &mut Out,
) -> Result<()> {
    let Some(key) = key else {
        return Err(Error::Usage(format!(
            "{image}: a registry image is verified by its signature: give --key PUB; \
             the fsck is for layouts: ingot pull it, then verify oci:PATH, oci:PATH:TAG \
             or oci:PATH@sha256:…"
        )));
    };
    if args.digest.is_some() {
        return Err(Error::Usage(format!(
            "{image}: name the digest in the reference (docker://HOST/REPO@sha256:…), not --digest"
        )));
    }
    let access = access(Vec::new(), &args.network);
    let report =
        signing::verify_registry(image, args.identity.as_ref(), &key, &access, out.progress())?;
    out.report(args.json, &report, render_signature)
}

fn render_signature(r: &signing::SignatureReport) -> String {
    let p = &r.provenance;
    let provenance = match (p.statements, p.envelopes) {
        (0, 0) => "provenance: none attached".to_string(),
        (n, 0) => format!("provenance: {n} statement(s) attached, not signed"),
        (n, e) => format!(
            "provenance: ok: {e} envelope(s) verify, signing {} of {n} statement(s)",
            p.signed
        ),
    };
    format!(
        "signature: ok: {} is signed for {} (signature {} of {} at tag {})\n{provenance}\n",
        r.digest, r.identity, r.verified, r.signatures, r.signature_tag
    )
}

/// The passphrase of a signing key: $INGOT_SIGNING_PASSPHRASE, else
/// cosign's $COSIGN_PASSWORD, else asked on the terminal (twice when
/// `confirm`, for a new key).
fn passphrase(confirm: bool) -> Result<Vec<u8>> {
    // The one place the environment gives a passphrase (clippy.toml).
    #[allow(clippy::disallowed_methods)]
    let from_env = std::env::var_os(PASSPHRASE_VAR).or_else(|| std::env::var_os("COSIGN_PASSWORD"));
    if let Some(p) = from_env {
        return Ok(p.into_encoded_bytes());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Error::Usage(format!(
            "no passphrase: set {PASSPHRASE_VAR} (or COSIGN_PASSWORD), or run on a terminal to be asked"
        )));
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map_err(|e| Error::Failed(format!("reading the passphrase from the terminal: {e}")))
    };
    let first = ask("Passphrase for the private key: ")?;
    if confirm && ask("The passphrase again: ")? != first {
        return Err(Error::Usage(
            "the two passphrases differ; nothing was written".into(),
        ));
    }
    Ok(first.into_bytes())
}

/// The variable `keygen` and `sign` read the passphrase from.
const PASSPHRASE_VAR: &str = "INGOT_SIGNING_PASSPHRASE";

fn keygen(args: KeygenArgs, out: &mut Out) -> Result<()> {
    // Refuse an existing file before asking for a passphrase.
    let (private, public) = signing::key_paths(&args.output);
    for path in [&private, &public] {
        if path.symlink_metadata().is_ok() {
            return Err(Error::Usage(format!(
                "{} exists; refusing to overwrite a key (choose another -o, or remove it)",
                path.display()
            )));
        }
    }
    let passphrase = passphrase(true)?;
    let report = signing::keygen(&args.output, &passphrase)?;
    out.log(&format!(
        "wrote {} (private, 0600) and {}",
        report.private_key.display(),
        report.public_key.display()
    ));
    out.json_only(args.json, &report)
}

fn sign(args: SignArgs, out: &mut Out) -> Result<()> {
    let identity = match (&args.image, &args.identity) {
        (ImageRef::Oci(image), None) => {
            return Err(Error::Usage(format!(
                "{image}: a layout has no repository: name the one it will be pushed to, \
                 --identity HOST/REPO"
            )));
        }
        (ImageRef::Docker(image), Some(_)) => {
            return Err(Error::Usage(format!(
                "{image}: a registry image is signed for its own repository; --identity is for layouts"
            )));
        }
        (_, identity) => identity.clone(),
    };
    let passphrase = passphrase(false)?;
    let key = signing::load_private_key(&args.key, &passphrase)?;
    let report = match (&args.image, identity) {
        (ImageRef::Oci(image), Some(identity)) => signing::sign_layout(image, &identity, &key)?,
        (ImageRef::Docker(image), _) => {
            let access = access(args.insecure, &args.network);
            signing::sign_registry(image, &key, &access, out.progress())?
        }
        _ => unreachable!("refused by sign_image and the match above"),
    };
    out.log(&format!(
        "{} {} for {} at tag {} ({} signatures{})",
        if report.added {
            "signed"
        } else {
            "already signed"
        },
        report.digest,
        report.identity,
        report.signature_tag,
        report.signatures,
        match report.provenance.len() {
            0 => String::new(),
            n => format!("; {n} provenance statement(s) signed as DSSE envelopes"),
        }
    ));
    out.report(args.json, &report, |r| format!("{}\n", r.digest))
}

/// `verify --rebuild`: the fsck, then the image rebuilt from `recipe`
/// with the settings it records, and compared.
fn rebuild(args: VerifyArgs, image: &OciRef, recipe: PathBuf, out: &mut Out) -> Result<()> {
    use crate::commands::rebuild as rebuilding;
    let recipe = Recipe::load(&recipe_file(recipe))?;
    let sources = build_sources(
        args.cache,
        args.no_cache,
        args.insecure,
        args.mirror,
        &args.network,
    );
    let progress = out.progress();
    let request = rebuilding::Request {
        image,
        expected: args.digest.as_ref(),
        recipe: &recipe,
        sources: &sources,
        progress: &progress,
    };
    let log = &mut out.logger();
    let report = rebuilding::rebuild(&request, log)?;
    out.report(args.json, &report, rebuilding::render)?;
    if report.equal {
        Ok(())
    } else {
        Err(rebuilding::failure(&report))
    }
}

/// The progress `--quiet` and `--progress` ask for: on a terminal, one
/// line redrawn in place (auto); elsewhere, or with plain, plain lines.
fn progress_for(quiet: bool, mode: ProgressMode) -> Progress {
    let stderr = |line: &str| eprintln!("{line}");
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match mode {
        _ if quiet => Progress::quiet(),
        ProgressMode::None => Progress::logs_only(stderr),
        ProgressMode::Auto if terminal => Progress::terminal().every(progress_interval()),
        ProgressMode::Auto | ProgressMode::Plain => {
            Progress::new(stderr).every(progress_interval())
        }
    }
}

/// How long work runs before its progress shows, and between plain
/// lines: 1 s, or `INGOT_PROGRESS_INTERVAL_MS` (0 shows every update: for
/// logs that want them all, and tests that must not depend on speed).
#[allow(clippy::disallowed_methods)] // the environment enters here
fn progress_interval() -> std::time::Duration {
    std::env::var("INGOT_PROGRESS_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_millis,
        )
}

/// Where a command's words go: its result to stdout; log lines and
/// progress to stderr, unless `--quiet`.
struct Out<'a> {
    stdout: &'a mut dyn Write,
    quiet: bool,
    /// `--progress`, for commands that make a display of their own.
    mode: ProgressMode,
    /// The one progress display of the command, shared by its steps.
    progress: Progress,
}

impl Out<'_> {
    /// A log line on stderr, above the progress line if one is shown.
    fn log(&self, line: &str) {
        self.logger()(line);
    }

    /// [`Out::log`], as a closure that does not borrow `self`.
    fn logger(&self) -> impl FnMut(&str) + use<> {
        let (quiet, progress) = (self.quiet, self.progress.clone());
        move |line: &str| {
            if !quiet {
                progress.suspend(|| eprintln!("{line}"));
            }
        }
    }

    /// The progress display, for a step to report to.
    fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// A report on stdout: JSON, or `render`'s words.
    fn report<T: serde::Serialize>(
        &mut self,
        json: bool,
        report: &T,
        render: impl FnOnce(&T) -> String,
    ) -> Result<()> {
        if json {
            return self.json(report);
        }
        (self.stdout)
            .write_all(render(report).as_bytes())
            .map_err(|e| Error::Failed(format!("writing to stdout: {e}")))
    }

    /// Bytes on stdout, as they are.
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        (self.stdout)
            .write_all(bytes)
            .map_err(|e| Error::Failed(format!("writing to stdout: {e}")))
    }

    /// With `--json`, the report on stdout; without, the command's result
    /// is the file it wrote, and stdout stays empty.
    fn json_only<T: serde::Serialize>(&mut self, json: bool, report: &T) -> Result<()> {
        if json { self.json(report) } else { Ok(()) }
    }

    /// Pretty JSON with object keys sorted (through `serde_json::Value`, a
    /// BTreeMap), so the HashMaps inside oci-spec's types print the same way
    /// on every run.
    fn json<T: serde::Serialize>(&mut self, value: &T) -> Result<()> {
        let text = serde_json::to_value(value)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .map_err(|e| Error::Failed(format!("encoding JSON: {e}")))?;
        writeln!(self.stdout, "{text}")
            .map_err(|e| Error::Failed(format!("writing to stdout: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_flags_parse() {
        let cli = Cli::try_parse_from([
            "ingot",
            "build",
            "r.yaml",
            "-o",
            "out/x",
            "--revision",
            "abc",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Build(args) => {
                assert_eq!(args.recipes, [PathBuf::from("r.yaml")]);
                assert_eq!(args.output, Some(PathBuf::from("out/x")));
                assert_eq!(args.revision.as_deref(), Some("abc"));
                assert_eq!(args.compression, LayerCompression::Gzip);
                assert!(args.insecure.is_empty() && args.json);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["ingot", "build"]).is_err());
        assert!(Cli::try_parse_from(["ingot", "inspect", "oci:x", "--bogus"]).is_err());
    }

    #[test]
    fn build_tags_and_push_parse() {
        let line = "ingot build r.yaml --tag abc123 --tag latest --replace --push docker://h:5000/team/app";
        match Cli::try_parse_from(line.split_whitespace()).map(|c| c.command) {
            Ok(Command::Build(args)) => {
                assert_eq!(args.tags, ["abc123", "latest"]);
                assert!(args.replace);
                let push = args.push.expect("--push");
                assert_eq!(
                    (push.host.as_str(), push.repository.as_str()),
                    ("h:5000", "team/app")
                );
                assert_eq!(push.tag, None);
            }
            other => panic!("parsed as {other:?}"),
        }
        for bad in [
            "ingot build r.yaml --tag=-x",
            "ingot build r.yaml --tag a/b",
            "ingot build r.yaml --push docker://h/app:1",
            "ingot build r.yaml --push oci:out",
        ] {
            assert!(
                Cli::try_parse_from(bad.split_whitespace()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn cache_registries_parse() {
        let line = "ingot build r.yaml --cache-from docker://a:5000/c --cache-from docker://b/c --cache-to docker://a:5000/c";
        match Cli::try_parse_from(line.split_whitespace()).map(|c| c.command) {
            Ok(Command::Build(args)) => {
                let hosts: Vec<&str> = args.cache_from.iter().map(|r| r.host.as_str()).collect();
                assert_eq!(hosts, ["a:5000", "b"]);
                assert_eq!(args.cache_to.len(), 1);
            }
            other => panic!("parsed as {other:?}"),
        }
        for bad in [
            "ingot build r.yaml --cache-from docker://h/c:tag",
            "ingot build r.yaml --cache-to oci:out",
            "ingot build r.yaml --no-cache --cache-from docker://h/c",
        ] {
            assert!(
                Cli::try_parse_from(bad.split_whitespace()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn new_commands_and_global_flags_parse() {
        let parse = |line: &str| Cli::try_parse_from(["ingot"].into_iter().chain(line.split(' ')));
        let cli = parse("validate a b/ --locked --json --progress plain").unwrap();
        assert_eq!(cli.progress, ProgressMode::Plain);
        match cli.command {
            Command::Validate(args) => {
                assert_eq!(args.recipes, [PathBuf::from("a"), PathBuf::from("b/")]);
                assert!(args.locked && args.json);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(parse("validate").is_err(), "a recipe is required");
        assert_eq!(parse("-q gc oci:x").unwrap().progress, ProgressMode::Auto);
        assert!(parse("gc oci:x --progress none").is_ok());
        assert!(parse("gc oci:x --progress sometimes").is_err());
        match parse("completions zsh").unwrap().command {
            Command::Completions(args) => assert_eq!(args.shell, clap_complete::Shell::Zsh),
            other => panic!("parsed as {other:?}"),
        }
        match parse("export oci:x --format docker-archive -o -")
            .unwrap()
            .command
        {
            Command::Export(args) => assert!(is_stdout(&args.output)),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn json_errors_carry_kind_and_position() {
        let err = Error::from(crate::error::RecipeError {
            file: PathBuf::from("r.yaml"),
            pos: Some(crate::error::Pos { line: 4, col: 2 }),
            message: "bad".into(),
        })
        .within("building");
        let json: serde_json::Value = serde_json::from_str(&error_json(&err)).unwrap();
        assert_eq!(json["error"]["kind"], "recipe");
        assert_eq!(
            (
                &json["error"]["file"],
                &json["error"]["line"],
                &json["error"]["column"]
            ),
            (
                &serde_json::json!("r.yaml"),
                &serde_json::json!(4),
                &serde_json::json!(2)
            )
        );
        let json: serde_json::Value =
            serde_json::from_str(&error_json(&Error::Unsealed(vec!["a".into(), "b".into()])))
                .unwrap();
        assert_eq!(json["error"]["kind"], "unsealed");
        assert_eq!(json["error"]["problems"], serde_json::json!(["a", "b"]));
        assert_eq!(json["error"]["line"], serde_json::Value::Null);
    }

    #[test]
    fn network_limits_parse_on_every_command_that_talks_to_the_network() {
        let network_of = |line: &str| {
            let args = ["ingot"].into_iter().chain(line.split_whitespace());
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{line}: {e}"));
            match cli.command {
                Command::Build(a) => a.network,
                Command::Lock(a) => a.network,
                Command::Outdated(a) => a.network,
                Command::Pull(a) => a.network,
                Command::Push(a) => a.network,
                Command::Inspect(a) => a.reach.network,
                Command::Audit(a) => a.reach.network,
                Command::Export(a) => a.reach.network,
                Command::Bind(a) => a.reach.network,
                Command::Verify(a) => a.network,
                Command::Rebase(a) => a.network,
                other => panic!("{line}: parsed as {other:?}"),
            }
        };
        let commands = [
            "build r.yaml",
            "lock r.yaml",
            "pull docker://h/x:1 -o o",
            "push oci:x docker://h/x",
            "inspect docker://h/x:1",
            "audit docker://h/x:1",
            "export docker://h/x:1 --format docker-archive -o x.tar",
            "bind docker://h/x:1 --format env -o e",
            // The rebuild resolves bases and fetches packages.
            "verify oci:x --rebuild r.yaml",
        ];
        for line in commands {
            assert_eq!(network_of(line).timeouts(), Timeouts::DEFAULT, "{line}");
            let set = network_of(&format!("{line} --timeout 5 --connect-timeout 3"));
            assert_eq!(
                set.timeouts(),
                Timeouts {
                    connect: Duration::from_secs(3),
                    stall: Duration::from_secs(5),
                    total: Timeouts::DEFAULT.total,
                },
                "{line}"
            );
        }
        for bad in [
            "--timeout 0",
            "--timeout x",
            "--connect-timeout -1",
            "--timeout 1s",
        ] {
            let line = format!("ingot pull docker://h/x:1 -o o {bad}");
            assert!(
                Cli::try_parse_from(line.split_whitespace()).is_err(),
                "{bad}"
            );
        }
        // Commands that never use the network do not take the flags.
        let line = "gc oci:x --connect-timeout 5";
        let args = ["ingot"].into_iter().chain(line.split_whitespace());
        assert!(Cli::try_parse_from(args).is_err(), "{line}");
    }

    #[test]
    fn verify_flags_parse() {
        let cli = Cli::try_parse_from(["ingot", "verify", "oci:out/h:1", "--json"]).unwrap();
        match cli.command {
            Command::Verify(args) => {
                let ImageRef::Oci(image) = args.image else {
                    panic!("not a layout: {:?}", args.image)
                };
                assert_eq!(image.path, PathBuf::from("out/h"));
                assert_eq!(image.selector, Selector::Tag("1".into()));
                assert!(args.json);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["ingot", "verify"]).is_err());
        // Signatures: --identity needs --key; --key and --rebuild do not mix;
        // a docker-archive is neither a layout nor a signed image.
        let verify = |line: &str| {
            Cli::try_parse_from(
                ["ingot", "verify"]
                    .into_iter()
                    .chain(line.split_whitespace()),
            )
        };
        assert!(verify("docker://h/r:1 --key k.pub").is_ok());
        assert!(verify("oci:o:1 --key k.pub --identity h:5000/team/r").is_ok());
        assert!(verify("oci:o:1 --identity h/r").is_err());
        assert!(verify("oci:o:1 --identity h/r:1 --key k").is_err());
        assert!(verify("oci:o:1 --key k --rebuild r").is_err());
        assert!(verify("docker-archive:x.tar --key k").is_err());

        let parse =
            |line: &str| Cli::try_parse_from(["ingot"].into_iter().chain(line.split_whitespace()));
        let digest = format!("sha256:{}", "a".repeat(64));
        let line = format!("verify oci:o:1 --digest {digest} --rebuild r --cache c");
        match parse(&line).unwrap().command {
            Command::Verify(args) => {
                assert_eq!(args.digest.map(|d| d.to_string()), Some(digest));
                assert_eq!(args.rebuild, Some(PathBuf::from("r")));
                assert_eq!(args.cache, Some(PathBuf::from("c")));
            }
            other => panic!("parsed as {other:?}"),
        }
        for bad in [
            "verify oci:o --digest sha256:ab",
            "verify oci:o --cache c",
            "verify oci:o --no-cache",
            "verify oci:o --rebuild r --cache c --no-cache",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn export_flags_parse() {
        let cli = Cli::try_parse_from([
            "ingot",
            "export",
            "oci:out/h:1",
            "--format",
            "docker-archive",
            "-o",
            "h.tar",
            "--tag",
            "localhost:5000/h:2",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Export(args) => {
                assert_eq!(args.image, ImageRef::Oci("out/h:1".parse().unwrap()));
                assert!(args.reach.insecure.is_empty());
                assert_eq!(args.format, ExportFormat::DockerArchive);
                assert_eq!(args.output, PathBuf::from("h.tar"));
                assert_eq!(args.tag.unwrap().to_string(), "localhost:5000/h:2");
                assert_eq!(args.reach.platform, None, "the default, not insisted on");
                assert!(args.json);
            }
            other => panic!("parsed as {other:?}"),
        }
        let base = ["ingot", "export", "oci:x", "-o", "x.tar"];
        // The format and the output are required; the tag is checked.
        assert!(Cli::try_parse_from(base).is_err());
        let with = |extra: &[&'static str]| Cli::try_parse_from(base.iter().chain(extra));
        assert!(with(&["--format", "docker-archive"]).is_ok());
        assert!(with(&["--format", "oci-archive"]).is_err());
        assert!(with(&["--format", "docker-archive", "--tag", "Bad:1"]).is_err());
        assert!(with(&["--format", "docker-archive", "--tag", "notag"]).is_err());
        assert!(
            Cli::try_parse_from(["ingot", "export", "oci:x", "--format", "docker-archive"])
                .is_err()
        );
    }

    #[test]
    fn push_and_pull_flags_parse() {
        let cli = Cli::try_parse_from([
            "ingot",
            "push",
            "oci:out/h:1",
            "docker://127.0.0.1:5000/h",
            "--from-repo",
            "team/base",
            "--insecure",
            "reg.lan:5000",
            "--insecure",
            "[::1]:5000",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Push(args) => {
                assert_eq!(args.source.path, PathBuf::from("out/h"));
                assert_eq!(args.source.selector, Selector::Tag("1".into()));
                assert_eq!(args.destination.host, "127.0.0.1:5000");
                assert_eq!(args.destination.repository, "h");
                assert_eq!(args.destination.tag, None);
                let from: Vec<&str> = args.from_repo.iter().map(Repository::as_str).collect();
                assert_eq!(from, ["team/base"]);
                let insecure: Vec<&str> = args.insecure.iter().map(Host::as_str).collect();
                assert_eq!(insecure, ["reg.lan:5000", "[::1]:5000"]);
                assert!(args.json);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "ingot",
            "pull",
            "docker://h/x:1",
            "-o",
            "out/x",
            "--platform",
            "linux/arm64/v8",
        ])
        .unwrap();
        match cli.command {
            Command::Pull(args) => {
                assert_eq!(args.source.host, "h");
                assert_eq!(args.source.repository, "x");
                assert_eq!(args.source.tag.as_deref(), Some("1"));
                assert_eq!(args.output, PathBuf::from("out/x"));
                let platform = args.platform.expect("--platform");
                assert_eq!(
                    (platform.os.as_str(), platform.arch.as_str()),
                    ("linux", "arm64")
                );
                assert_eq!(platform.variant.as_deref(), Some("v8"));
                assert!(!args.json);
            }
            other => panic!("parsed as {other:?}"),
        }
        // pull needs -o; push needs both references.
        assert!(Cli::try_parse_from(["ingot", "pull", "docker://h/x"]).is_err());
        assert!(Cli::try_parse_from(["ingot", "push", "oci:x"]).is_err());
    }

    #[test]
    fn images_parse_into_their_transports() {
        let parse = |line: &str| {
            let cli = Cli::try_parse_from(["ingot"].into_iter().chain(line.split(' ')));
            cli.unwrap_or_else(|e| panic!("{line}: {e}")).command
        };
        match parse("gc oci:out/h --dry-run") {
            Command::Gc(args) => {
                assert_eq!(args.image.path, PathBuf::from("out/h"));
                assert_eq!(args.image.selector, Selector::Only);
                assert!(args.dry_run);
            }
            other => panic!("parsed as {other:?}"),
        }
        match parse("inspect docker://reg.lan:5000/team/h:2 --insecure reg.lan") {
            Command::Inspect(args) => {
                let ImageRef::Docker(image) = args.image else {
                    panic!("{} is not a registry image", args.image);
                };
                assert_eq!(
                    (image.host.as_str(), image.repository.as_str()),
                    ("reg.lan:5000", "team/h")
                );
                assert_eq!(args.reach.insecure, ["reg.lan".parse().unwrap()]);
                assert_eq!(args.reach.platform, None, "the default, not insisted on");
            }
            other => panic!("parsed as {other:?}"),
        }
        match parse("audit docker-archive:h.tar --platform linux/arm64") {
            Command::Audit(args) => {
                let image = args.image.map(|i| i.to_string());
                assert_eq!(image.as_deref(), Some("docker-archive:h.tar"));
                assert_eq!(
                    args.reach.platform.map(|p| p.to_string()).as_deref(),
                    Some("linux/arm64")
                );
            }
            other => panic!("parsed as {other:?}"),
        }
        match parse("audit --list-rules") {
            Command::Audit(args) => assert!(args.list_rules && args.image.is_none()),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn bad_values_are_refused_at_the_edge() {
        // (the command line, its bad value, a piece of the form expected)
        for (line, bad, form) in [
            ("inspect oci:x --platform linux", "linux", "OS/ARCH"),
            (
                "pull docker://h/x -o o --platform linux/",
                "linux/",
                "OS/ARCH",
            ),
            ("inspect oci:x --insecure h:port", "h:port", "HOST:PORT"),
            ("build r.yaml --insecure h:70000", "h:70000", "HOST:PORT"),
            (
                "push oci:x docker://h/x --from-repo Team/b",
                "Team/b",
                "repository name",
            ),
            (
                "push docker-archive:x.tar docker://h/x",
                "docker-archive:x.tar",
                "oci:PATH",
            ),
            ("push docker://h/y docker://h/x", "docker://h/y", "oci:PATH"),
            ("gc docker://h/x", "docker://h/x", "oci:PATH"),
            (
                "gc docker-archive:x.tar",
                "docker-archive:x.tar",
                "oci:PATH",
            ),
            (
                "verify docker-archive:x.tar",
                "docker-archive:x.tar",
                "oci:PATH:TAG",
            ),
            (
                "push oci:x docker://h:65536/x",
                "docker://h:65536/x",
                "docker://HOST[:PORT]",
            ),
            ("push oci:x oci:y", "oci:y", "docker://HOST[:PORT]"),
            ("inspect hello.tar", "hello.tar", "docker-archive:PATH"),
        ] {
            let err =
                Cli::try_parse_from(["ingot"].into_iter().chain(line.split(' '))).expect_err(line);
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
            assert_eq!(err.exit_code(), 2);
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            assert!(first.contains(&format!("'{bad}'")), "{first}");
            assert!(first.contains(form), "{first}");
        }
    }

    #[test]
    fn credential_files_follow_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let files = |pairs| credential_sources(env(pairs), 1000).files;
        let paths = |list: &[&str]| list.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            files(&[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1")]),
            paths(&[
                "/run/user/1/containers/auth.json",
                "/home/u/.config/containers/auth.json",
                "/home/u/.docker/config.json"
            ])
        );
        // No XDG_RUNTIME_DIR: the per-uid directory, under the root given.
        assert_eq!(
            files(&[("HOME", "/home/u")]),
            paths(&[
                "/run/containers/1000/auth.json",
                "/home/u/.config/containers/auth.json",
                "/home/u/.docker/config.json"
            ])
        );
        assert_eq!(
            files(&[(IMPLICIT_ROOT_VAR, "/tmp/root")]),
            paths(&["/tmp/root/run/containers/1000/auth.json"])
        );
        assert_eq!(
            files(&[
                ("HOME", "/home/u"),
                ("XDG_RUNTIME_DIR", "/run/user/1"),
                ("XDG_CONFIG_HOME", "/cfg"),
                ("REGISTRY_AUTH_FILE", "/a.json"),
                ("DOCKER_CONFIG", "/d"),
            ]),
            paths(&["/a.json", "/cfg/containers/auth.json", "/d/config.json"])
        );
        // Empty variables count as unset; one file named twice is read once.
        assert_eq!(
            files(&[
                ("REGISTRY_AUTH_FILE", ""),
                ("XDG_RUNTIME_DIR", "/r"),
                ("XDG_CONFIG_HOME", "/r"),
            ]),
            paths(&["/r/containers/auth.json"])
        );
    }

    #[test]
    fn max_layer_entries_is_a_positive_number() {
        assert_eq!(
            max_layer_entries(None).unwrap(),
            bounds::DEFAULT_MAX_ENTRIES
        );
        assert_eq!(
            max_layer_entries(Some("")).unwrap(),
            bounds::DEFAULT_MAX_ENTRIES
        );
        assert_eq!(max_layer_entries(Some(" 100 ")).unwrap(), 100);
        for bad in ["0", "-1", "1e6", "many"] {
            let err = max_layer_entries(Some(bad)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(
                err.to_string().starts_with("INGOT_MAX_LAYER_ENTRIES="),
                "{err}"
            );
        }
    }

    #[test]
    fn source_date_epoch_is_strict() {
        assert_eq!(source_date_epoch(None).unwrap(), 0);
        assert_eq!(source_date_epoch(Some("")).unwrap(), 0);
        assert_eq!(
            source_date_epoch(Some("1700000000")).unwrap(),
            1_700_000_000
        );
        assert!(source_date_epoch(Some("yesterday")).is_err());
        assert!(source_date_epoch(Some("-1")).is_err());
        let max = crate::image::MAX_EPOCH;
        assert_eq!(source_date_epoch(Some(&max.to_string())).unwrap(), max);
        for beyond in [max + 1, u64::MAX] {
            let err = source_date_epoch(Some(&beyond.to_string())).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains("9999-12-31T23:59:59Z"), "{err}");
        }
    }
}
