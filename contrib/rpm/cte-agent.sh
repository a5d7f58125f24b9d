# cte-agent: register_host, vmd and vmutil on PATH (they live in the product's folder).
case ":${PATH}:" in
    *:/opt/vormetric/DataSecurityExpert/agent/vmd/bin:*) ;;
    *) PATH="${PATH}:/opt/vormetric/DataSecurityExpert/agent/vmd/bin" ;;
esac
