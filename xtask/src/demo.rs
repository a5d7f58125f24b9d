pub(crate) fn run(_arguments: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not written yet")
}
