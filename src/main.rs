fn main() {
    // The runtime sets CNI_COMMAND; an operator at a shell does not.
    let status = if std::env::var_os("CNI_COMMAND").is_some() {
        hostguard::cni::run()
    } else {
        let args: Vec<String> = std::env::args().skip(1).collect();
        hostguard::cli::run(&args)
    };
    std::process::exit(status);
}
