"""The phrase tables of the hand-over cues (``handover_cues.py``), per reason and language.

Each table describes *events and demands*, not topics (see ``handover_cues``); kept here
because they are long, and the code that reads them is short. Every entry is a regular
expression matched case-insensitively.
"""

from __future__ import annotations

SAFETY = {
    "en": (
        r"\b(?:injur(?:ed|y|ies)|hurt (?:me|my|him|her|them|us|myself|himself|herself)|wounded)\b",
        r"\bburn(?:ed|t|s)? (?:my|his|her|their|our|me|him|myself|himself|herself)\b",
        r"\b(?:burns? on|blister(?:s|ed)?)\b",
        r"\b(?:electric(?:al)? shock|shocked me|gave (?:me|him|her) a shock|electrocut\w*|"
        r"(?:got|get|gave me) a (?:zap|jolt)|zapped (?:me|him|her)|tingling)\b",
        r"\b(?:spark(?:s|ed|ing)|sparking)\b",
        r"\b(?:smok(?:ing|ed|es)|smoke (?:came|coming|pouring|everywhere|from))\b",
        r"\b(?:on fire|caught fire|catch fire|burst into flames|flames?|fire started)\b",
        r"\b(?:burning smell|smell(?:s|ed)? (?:of|like) (?:burning|burnt|smoke|gas)|"
        r"smell of gas|gas (?:smell|leak))\b",
        r"\b(?:melt(?:ed|ing)|scorch\w*|overheat\w*)\b",
        r"\b(?:swollen|swelling(?: up)?|bulging|bulges|puffed up|puffing up)\b",
        r"\b(?:explod\w*|blew up)\b",
        r"\b(?:swallowed|chok(?:ed|ing) on|allergic reaction|anaphyla\w*|food poisoning|"
        r"epi-?pen|hives)\b",
        r"\b(?:cut (?:my|his|her) (?:finger|hand|thumb)|bleeding)\b",
        r"\b(?:(?:too|really|very|extremely) hot to touch|"
        r"plug (?:gets|got|is) (?:really |very )?hot)\b",
        r"\b(?:ended up in|taken to|went to) (?:the )?(?:hospital|a&e|emergency|er)\b",
        r"\b(?:fell|falling|came down|collapsed|came loose|broke off|gave way)\b[^.?!]{0,60}"
        r"\b(?:hit|struck|landed on|fell on)\b (?:a |an |the |my |our |me\b|him\b|her\b|us\b|"
        r"someone|somebody)",
        r"\b(?:broken|fractured) (?:arm|leg|wrist|ankle|foot|toe|finger|hand|nose|ribs?|"
        r"bones?|hip|collarbone)\b|\bconcussion\b|\b(?:needed|got|had|needs) (?:\w+ )?stitches\b",
    ),
    "fr": (
        r"\b(?:me suis|s['’]est|se sont|s['’]être) (?:brûlé|blessé|électrocuté|ébouillanté)",
        r"\b(?:me suis|m['’]être|s['’]est|se sont) coupée?s? (?:le|la|les|au|à la|avec)\b",
        r"\b(?:brûlure|brûlé (?:la|le|les|à la|au)|blessure|blessé|blessée)\b",
        r"\b(?:entorse|foulure|luxation|fracture|fracturée?|(?:bras|jambe|poignet|cheville|"
        r"doigt|côte|nez) cassée?|points de suture|s['’]est fait (?:très )?mal)\b",
        r"\b(?:électrocut\w*|décharge(?: électrique)?|pris le jus|pris une châtaigne)\b",
        r"\b(?:étincelles?|fait des étincelles)\b",
        r"\b(?:fumée|fume|fumait)\b",
        r"\b(?:pris feu|prend feu|en feu|flammes?|départ de feu|début d['’]incendie)\b",
        r"\b(?:odeur de (?:brûlé|gaz|plastique brûlé|cramé)|fuite de gaz|sent le (?:brûlé|gaz))",
        r"\b(?:fondu|fondue|a fondu)\b",
        r"\bbatterie (?:a |est )?(?:gonflée?|gonfle|déformée?)\b|\ba gonflé\b|\best gonflée\b",
        r"\b(?:explos\w*|a explosé)\b",
        r"\b(?:avalé|étouff\w*|réaction allergique|allergie|intoxication)\b",
        r"\b(?:urgences|à l['’]hôpital|(?:grosse |forte )?réaction (?:allergique|cutanée)|"
        r"fait une (?:grosse |forte )?réaction|gonfl(?:é|ée|és|ées)|plaques rouges)\b",
        r"\b(?:brûlant|surchauffe)\b",
        r"\b(?:saign(?:e|ait|é|ement)|hémorragie|évanoui\w*|perdu connaissance)\b",
    ),
    "de": (
        r"\b(?:verletzt|verbrannt|verbrüht|stromschlag|schlag bekommen|funken|raucht|rauch|"
        r"brennt|feuer|flammen|brandgeruch|riecht verbrannt|gasgeruch|geschmolzen|"
        r"aufgebläht|explodiert|verschluckt|allergische reaktion|notaufnahme|krankenhaus)\b",
    ),
    "es": (
        r"\b(?:herid[oa]|me quem[eé]|quemadura|descarga eléctrica|chispas|humo|"
        r"incendio|llamas|olor a quemado|olor a gas|explot\w*|batería hinchada|"
        r"reacción alérgica|urgencias)\b",
    ),
    "zh": (
        r"受伤|烫伤|烧伤|烫到|弄伤|划伤|割伤|流血|触电|漏电|电到|被电|电了一下|火花|打火|冒[白黑青]?烟|"
        r"刹车(?:失灵|变软|踩不住|不灵|没反应)|差点(?:追尾|撞|出事|出车祸)|"
        r"鼓起|鼓了|"
        r"冒火|起火|着火|燃烧|烧起来|烧焦|焦味|糊味|煤气味|燃气味|(?:燃气|煤气|天然气|液化气|气罐|灶)[^，。！？]{0,6}漏气|鼓包|膨胀|爆炸|炸了|"
        r"误吞|吞下|噎住|过敏反应|过敏了|食物中毒|送医|去医院|急诊|烫手|发烫得厉害|熔化|融化了|"
        r"磕破|缝了|缝针|骨折|摔伤|便血|吐血|呕吐|一直吐|从(?:宠物)?医院回来|送(?:去)?(?:宠物)?医院",
    ),
}

LEGAL = {
    "en": (
        r"\b(?:my|our) (?:lawyers?|attorneys?|solicitors?|legal (?:team|counsel|advisor))\b",
        r"\b(?:contact|call|hire|get|consult|involve|instruct|speak(?:ing)? to|talk(?:ing)? to)"
        r" (?:a |my |our )?(?:lawyer|attorney|solicitor)s?\b",
        r"\b(?:lawyers?|attorneys?|solicitors?) (?:involved|will|is going|are going|letter)\b",
        r"\b(?:legal (?:action|steps|proceedings|route|claim)|take (?:you|this|it|them) to court|"
        r"see you in court|small[- ]claims|in court|to court|court case|(?-i:sue)|suing|sued|"
        r"lawsuit|litigation|class action)\b",
        r"\b(?:ombudsman|consumer (?:protection|rights (?:agency|body|organi[sz]ation))|"
        r"trading standards|citizens advice|better business bureau|bbb|ftc|ofcom|"
        r"cease and desist|letter before action)\b",
        r"\b(?:report|reported|reporting) (?:you|this|your company|it|them|him|her) to (?:the )?"
        r"(?:police|authorities|regulator|ombudsman|ftc|consumer|ico|information commissioner|"
        r"data protection authority|trading standards|cma)",
        r"\b(?:police report|called the police|contacted the police|(?:gone|went) to the police)\b",
        r"\b(?:money claim|county court claim|claim in the county court)\b",
        r"\b(?:lawyer|lawer|attorney|solicitor)\b[^.?!]{0,40}\b(?:drafting|drafts|writing|"
        r"sending|send)"
        r" (?:you |to you )?(?:a |the )?(?:formal )?(?:letter|notice|claim)",
        r"\bdata protection (?:regulator|authority|commissioner|watchdog)\b",
        r"\b(?:complaint|complained|complaining|report(?:ed|ing)?) (?:with|to) (?:the )?"
        r"(?:consumer (?:people|body|bodies|watchdog|authority|agency|council)|cma|"
        r"competition and markets authority|regulator|watchdog)\b",
    ),
    "fr": (
        r"\b(?:mon|notre|un|une|à un|à mon) avocate?s?\b(?! de)",
        r"\b(?:saisir|saisirai|saisis|saisi|saisie) (?:ce jour |aujourd['’]hui |dès maintenant )?"
        r"(?:la justice|le tribunal|un avocat|mon avocat|le médiateur|la médiation)",
        r"\b(?:tribunal|tribunaux|en justice|procès|poursuites?|poursuivre|mise en demeure|"
        r"action en justice|plainte|porter plainte|huissier|justice de paix|juge de paix)\b",
        r"\b(?:ufc[- ]que choisir|dgccrf|60 millions|association de consommateurs|"
        r"médiateur|conciliateur|signalconso|test-achats)\b",
        r"\b(?:fédération|association|union|office|protection)\b[^.?!]{0,20}\bconsommat\w*",
        r"\b(?:réclamation|plainte|signalement) (?:auprès de|à) la cnil\b|\bsaisir la cnil\b",
        r"\b(?:informe|informerai|préviens|préviendrai|alerte|alerterai|écris à|contacte|"
        r"signale (?:ça|cela|le tout|l['’]incident) à|saisis|saisirai) la cnil\b",
    ),
    "de": (
        r"\b(?:mein(?:em)? anwalt|rechtsanwalt|anwältin|klage|verklagen|gericht|"
        r"verbraucherzentrale|rechtliche schritte|abmahnung)\b",
    ),
    "es": (r"\b(?:mi abogad[oa]|demanda(?:ré|r)|tribunal|juzgado|acciones legales|denuncia)\b",),
    "zh": (
        r"(?<!我是)(?<!作为)(?<!调)律师(?!傅)|律师函|起诉|诉讼|告你们|告到|"
        r"法院(?!门口|门前|旁边|附近|对面|那边)|打官司|法律途径|法律手段|仲裁|"
        r"消协|消费者协会|12315|12345|工商局|市场监管|监管部门|工信部|通管局|银保监|报警(?!器)|维权|"
        r"(?:向|到|去)[^，。！？,.!?]{0,8}(?:局|部|委|监管|协会)(?:投诉|举报)|(?:投诉|举报)到",
    ),
}

CHARGEBACK = {
    "en": (
        r"\b(?:file|filing|filed|raise|raising|initiate|initiating|request|requesting|start|open|"
        r"issue|submit|put in for|go for|going for|get) (?:a |the )?charge ?backs?\b",
        r"\b(?:do|doing) a charge ?back\b",
        r"\b(?:i'll|i will|i'm going to|gonna|i am going to) charge ?(?:it )?back\b",
        r"\bcharge ?back (?:with|through|via|from) (?:my|the) (?:bank|card)",
        r"\bdisput(?:e|ing|ed) (?:the |this |that |a |my )?(?:charge|payment|transaction|debit)",
        r"\b(?:charge|payment|transaction|debit) disputed\b",
        r"\b(?:dispute|claim|chargeback) (?:with|through|via) (?:\w+ ){0,2}(?:bank|card|paypal|"
        r"amex|visa|mastercard|klarna|issuer)\b",
        r"\b(?:get|have|ask|make) (?:visa|mastercard|amex|paypal|klarna|my bank|the bank|"
        r"my card (?:company|issuer|provider)) (?:to )?(?:pull|take|claw|get|reverse|refund|"
        r"block|cancel|charge|recover)\b",
        r"\b(?:reverse|reversing|reversal of|recall|claw back) "
        r"(?:the |this |that |my )?(?:card |credit card |debit card |bank )?"
        r"(?:payment|charge|transaction|debit)\b",
        r"\b(?:cancel|stop|block|cancell?ing|stopping|blocking) (?:the |this |that |my )?"
        r"(?:payment|charge|transaction|debit)s? (?:with|through|via|at) (?:my|the) "
        r"(?:bank|card issuer|credit card company)",
        r"\b(?:claim|get|take) (?:it|the money|my money|the payment) back (?:from|through|via|with)"
        r" (?:my |the )?(?:bank|card|visa|mastercard|amex|paypal|credit card|card issuer)",
        r"\b(?:my|the) (?:bank|card issuer|credit card company) (?:to|will) (?:reverse|refund|"
        r"cancel|block|recover|take back|get (?:it|my money) back)",
        r"\b(?:paypal|klarna) (?:dispute|claim|case)\b|"
        r"\b(?:open|opened|opening|filed|raised|started) a (?:dispute|claim) "
        r"(?:with|on|at) (?:paypal|my bank|klarna|the bank)",
        r"\bsection 75\b",
        r"\b(?:told|telling|tell|informed|notified|reported (?:it |this )?to)\b (?:amex|american "
        r"express|visa|mastercard|paypal|klarna|my bank|the bank|my card (?:company|issuer|"
        r"provider)|card issuer|credit card company)\b[^.?!]{0,40}\b(?:don'?t|do not|didn'?t|"
        r"did not|never) (?:recogni[sz]e|authori[sz]e|agree)",
        r"\b(?:rung|rang|called|phoned|contacted|been on to|spoken to|spoke to)\b[^.?!]{0,40}"
        r"\b(?:claw\w*|revers\w*|pull\w* (?:\w+ ){0,2}back|charg\w* (?:\w+ ){0,2}back)\b",
        r"\b(?:getting|get|got|clawing) (?:it|the money|my money|the deposit) back (?:for me )?"
        r"(?:through|via|from) (?:the|my) (?:bank|card (?:people|company|issuer|provider))\b"
        r"(?![^.!?]*\?)|\b(?:the|my) (?:bank|card people|card company)(?:'s| are| is)? "
        r"(?:getting|get|got|clawing|pulling) (?:it|the money|my money|the deposit) back\b",
        r"\b(?:amex|american express|visa|mastercard|paypal|klarna|my bank|the bank|monzo|"
        r"revolut|starling|"
        r"my card (?:company|issuer|provider)|card issuer|credit card company)\b[^.?!]{0,40}"
        r"\b(?:revers\w*|claw\w* (?:it |the money |that )?back|pull\w* (?:it|the (?:payment|"
        r"charge|money)) back|disput\w*|charg\w* ?back|(?:getting|get|got) (?:it|the money|"
        r"my money|the deposit) back)\b",
    ),
    "fr": (
        r"\b(?:rétrofacturation|chargeback)\b",
        r"\bcontest(?:er|erai|e|é) (?:le|la|ce|cette|mon|ma|les) (?:prélèvement|paiement|débit|"
        r"transaction|achat|opération|charge)",
        r"\b(?:faire|fait|fais|ferai|mettre|mis|former|formé) (?:une )?opposition\b",
        r"\b(?:rejeter|refuser|annuler|bloquer|contester|rembourser) (?:le|ce|cette|la|votre) "
        r"(?:débit|prélèvement|paiement|transaction|opération|recouvrement)\b",
        r"\b(?:ma|la) banque (?:pour|de|d['’]) ?(?:annuler|rembourser|bloquer|récupérer|contester)|"
        r"demand(?:e|er|é|erai|ons)s? à (?:ma|la|mon) (?:banque|conseiller bancaire)",
        r"\b(?:litige|réclamation) (?:paypal|avec paypal|auprès de (?:ma|la) banque)|"
        r"\b(?:ouvr\w*|lanc\w*|fai\w*|dépos\w*) un litige\b",
        r"\b(?:rejeter|annuler|bloquer) le prélèvement\b|\brejet (?:de|du) prélèvement\b",
        r"\bcontestation (?:auprès de|chez|à) (?:ma |la |mon )?(?:banque|carte|visa|mastercard|"
        r"amex|postfinance|paypal|émetteur)",
    ),
    "de": (
        r"\b(?:rückbuchung|zurückbuchen|lastschrift zurück|widerspruch bei (?:meiner|der) bank|"
        r"zahlung (?:stornieren|zurückholen)|paypal-konflikt|käuferschutz)\b",
    ),
    "es": (r"\b(?:contracargo|disputar el cargo|anular el pago con mi banco)\b",),
    "zh": (
        r"(?:我|申请|要|去|会|已经|准备)[^，。！？,.!?]{0,6}拒付|退单申请|(?:提出|发起|申请|提起)争议|撤销(?:这笔)?(?:付款|支付|交易|扣款)|冻结(?:这笔)?(?:付款|支付|交易)|"
        r"(?:银行|信用卡|发卡行|支付宝|微信支付|PayPal)(?:[^，。！？]{0,8})(?:争议|申诉|追回|撤回|拒付|止付|投诉)|"
        r"(?:让|找|通过|联系)(?:我的)?(?:银行|发卡行|信用卡中心)(?:[^，。！？]{0,10})(?:退回|追回|撤销|拿回|退款)",
        r"(?:银行|招行|工行|建行|农行|中行|交行|信用卡中心|发卡行|花呗|信用卡)[^。！？]{0,20}"
        r"(?:追回|拒付|撤销|止付|冻结|退回|拦截)",
    ),
}

DATA_TERMS = {
    "en": r"\b(?:my (?:personal )?(?:data|information|details)|from your (?:systems?|servers?|"
    r"database|records|files)|personal (?:data|information|"
    r"details)|(?:data|info|information|details|everything) (?:you|that you|your \w+) (?:hold|"
    r"holds|have|has|keep|keeps|store|stores)(?: on me| about me)?|(?:info|information) (?:on|"
    r"about) me|gdpr|dsar|subject access|article 1[5-7])\b",
    "fr": r"\b(?:mes données|données personnelles|mes informations personnelles|rgpd|"
    r"mes coordonnées|mon rib|mon iban|informations (?:que vous détenez|me concernant)|"
    r"(?:enregistré|détenez|conservé|conservez|stocké|gardé)e?s? sur (?:moi|mon|ma|mes|nous))\b",
    "de": r"\b(?:meine daten|personenbezogene(?:n)? daten|dsgvo|auskunft nach)\b",
    "es": r"\b(?:mis datos|datos personales|rgpd)\b",
    "zh": r"个人信息|个人数据|我的(?:数据|资料|信息)|隐私数据|用户数据|身份证|银行卡(?:信息|号)",
}
DATA_ACTIONS = {
    "en": r"\b(?:delete|erase|remove|wipe|destroy|get rid of|get (?:it|them|my \w+) off|copy of|"
    r"export|"
    r"download|access to|send me|"
    r"give me|hand over|correct|stop (?:using|processing|selling|sharing)|forget me|"
    r"right to be forgotten|(?:want|request|demand|need) (?:a copy|all|every|to see|to know))",
    "fr": r"\b(?:supprim\w*|suppression|effac\w*|retir\w*|copie|exporter|récupérer|"
    r"dites-moi|me dire|savoir (?:précisément )?ce que|"
    r"m['’]envoyer|accès à|garde\w*|conserv\w*|"
    r"droit (?:d['’]accès|à l['’]oubli|d['’]opposition)|rectifi\w*|arrêtez d['’]utiliser)",
    "de": r"\b(?:löschen|löschung|auskunft|kopie|herausgabe|berichtigen)",
    "es": r"\b(?:borrar|eliminar|suprimir|copia de|acceso a)",
    "zh": r"删除|删掉|清除|注销|导出|拷贝|副本|查询|查看|提供给我|告诉我你们(?:保存|存)|"
    r"撤回|发到了[^，。！？]{0,12}群|发给了(?:别人|陌生人|其他人|其他客人)|外泄|公开了",
}

PRIVACY = {
    "en": (
        r"\b(?:hacked|compromised|hijacked)\b",
        r"\bsomeone(?:['’]s| has| is)? (?:been )?(?:ordering|buying|using|logging|logged|spending|"
        r"booking|shopping) (?:on|in|into|with|from) my account\b",
        r"\b(?:someone|somebody|a stranger|another person|strangers?) (?:else )?(?:has )?"
        r"(?:logged|log|got|gotten|broke|signed|accessed|is using|used|changed)\b[^.?!]{0,30}"
        r"\b(?:into|in to|my|account)",
        r"\b(?:unauthori[sz]ed (?:access|login|log-in|sign-in|changes?|purchases?)|"
        r"identity theft|(?:data|privacy|security) (?:breach|leak)|leaked|someone ?else['’]?s "
        r"(?:booking|order|details|data|information|account|invoice|name and address))\b",
        r"\b(?:shared|sold|passed on|gave away|disclosed|leaked|handed over) my (?:\w+ ){0,2}"
        r"(?:data|details|info|information|email|phone number|number|address|name)\b",
        r"\bonly (?:place|company|shop|site|website|people|ones?) (?:i|we)(?:'ve| have)? "
        r"(?:ever )?(?:given|gave|told|shared|used|written|wrote|put|entered|mentioned)\b",
        r"\bwithout my (?:consent|permission|knowledge)\b",
        r"\b(?:wasn'?t|was not|it'?s not|not) me\b[^.?!]{0,40}\b(?:log(?:ged)? ?in|sign(?:ed)? ?in|"
        r"changed|order(?:ed)?|password)|\b(?:log(?:ged)? ?in|sign(?:ed)? ?in|changed|password)"
        r"\b[^.?!]{0,40}\b(?:wasn'?t|was not) me\b",
        r"\bright to be forgotten\b|\b(?:subject access request|dsar)\b",
        r"\b(?:ex|someone|somebody|a stranger|another person) (?:still )?(?:has|knows|uses|got) "
        r"(?:my |the |our )?(?:login|password|account|access)\b",
        r"\b(?:log ?in|logged in|sign[- ]?in|signed in|accessed)\b[^.?!]{0,50}\bfrom an? "
        r"(?:(?:unknown|strange|unfamiliar) (?:device|phone|computer|laptop|location)|"
        r"(?:device|phone|computer|laptop|location) (?:I|we) (?:don'?t|do not|didn'?t) "
        r"(?:know|recogni[sz]e|own))\b",
    ),
    "fr": (
        r"\b(?:piraté|piratage|usurpation d['’]identité|fuite de données|compte compromis)\b",
        r"\b(?:quelqu['’]un|qqn|qqun|une autre personne|un inconnu) (?:d['’]autre )?"
        r"(?:s['’]est connecté|a accédé|a utilisé|a modifié|a changé|se connecte|utilise mon "
        r"compte|commande avec mon compte|est (?:dans|sur) mon compte|est entré dans mon compte)",
        r"\bmon (?:numéro|num|mot de passe|mdp|e-?mail|adresse)(?: de (?:tel|tél|téléphone))?"
        r"[^.?!]{0,20}\b(?:a|ont) été (?:changée?s?|modifiée?s?)\b",
        r"\b(?:sans mon|jamais donné mon) (?:consentement|accord|autorisation)\b",
        r"\b(?:ce n['’]est pas|c['’]est pas|c['’]était pas|ce n['’]était pas) moi\b",
        r"\b(?:vendu|partagé|transmis|divulgué) mes (?:données|informations|coordonnées)\b",
        r"\bdroit (?:à l['’]oubli|à l['’]effacement|d['’]effacement|d['’]accès)\b|\bcnil\b",
        r"\b(?:connexion|connecté|accès|accédé)\b[^.?!]{0,60}\b(?:appareil|téléphone|ordinateur|"
        r"adresse ip)s? (?:que je ne connais pas|inconnu|que je ne reconnais pas)",
    ),
    "de": (r"\b(?:gehackt|datenleck|datenpanne|ohne meine zustimmung|identitätsdiebstahl)\b",),
    "es": (r"\b(?:hackead[oa]|filtración de datos|sin mi consentimiento)\b",),
    "zh": (
        r"被盗号|盗号|被盗|被黑|被入侵|不是我本人|密码(?:也)?被(?:人)?改|被(?:别)?人登|别人登录|"
        r"(?:把|将)?我的(?:个人)?(?:信息|手机号|电话|号码|资料)(?:给|卖|泄露)(?:给)?了?别人|"
        r"拿到(?:了)?我的?(?:手机号|电话|号码|信息)|有人(?:登录|登陆|进入|盗用|使用|用)了?我的?(?:账号|账户|帐号|帐户)|"
        r"信息泄露|泄露了?我的|隐私泄露|数据泄露|未经(?:我的?)?(?:同意|允许|授权)|"
        r"卖了?我的(?:信息|数据|资料)|骚扰电话|"
        r"(?:把|将)我的?(?:个人)?(?:信息|资料|数据|电话|手机号)(?:给)?(?:卖|泄露|泄漏)|"
        r"(?:信息|资料|数据)(?:被)?(?:卖|泄漏)了|"
        r"(?:多了|出现了?|冒出)[^，。！？]{0,6}(?:陌生人|陌生(?:的)?设备|不认识的(?:人|设备|手机))|"
        r"(?:陌生|不认识的)(?:设备|手机)(?:登录|登陆|上线)",
    ),
}

EXPLICIT_REQUEST = {
    "en": (
        r"\b(?:talk|speak|chat|connect|transfer|put|get) (?:me )?(?:through )?(?:to |with )?"
        r"[^.?!]{0,30}\b(?:human|person|agent|representative|operator|manager|supervisor|"
        r"someone|somebody|whoever|staff member|team member|advisor|adviser)\b",
        r"\b(?:real|live|actual|proper|flesh[- ]and[- ]blood) (?:human|person|agent|people)\b|"
        r"\bhuman (?:being|agent|"
        r"please|pls|plz)\b|\bwith a human\b|^\W*(?:a )?(?:human|agent|operator|person)\W*"
        r"(?:please|pls|plz)?\W*$",
        r"\b(?:get|have) (?:the|your|a) \w+ on the (?:phone|line)\b",
        r"\b(?:can|could|cn|would|will) (?:someone|somebody|anyone|a person|one of you|you guys) "
        r"(?:\w+ )?(?:call|ring|phone|contact|email) (?:me|us)\b",
        r"\b(?:member of|someone from|somebody from|one of) (?:your|the) [^.?!]{0,30}\b(?:contact|"
        r"call|ring|phone) (?:me|us)\b|\bcontact me by (?:phone|telephone)\b",
        r"\b(?:not|no more|stop) (?:a |the |this )?(?:bot|robot|machine|ai|chatbot)\b|"
        r"\bi (?:want|need) (?:a |an )?(?:human|person|agent|manager|supervisor)\b",
        r"\b(?:escalate (?:this|my|me)|(?:call|ring|phone) me back|have someone call me|"
        r"can someone call|give me a (?:call|ring))\b",
        r"\b(?:a|an|some) (?:human|person|real person|actual person|agent|manager|supervisor|"
        r"specialist|pharmacist|expert|technician|engineer|advisor|adviser) (?:to )?(?:look|check|"
        r"call|ring|contact|help|review|handle|deal|sort)\b",
        r"\b(?:put|get) me in touch with\b|\bin touch with (?:someone|somebody|a person|whoever|"
        r"the person|a manager|your manager)\b|\bwhoever(?:'s| is) in charge\b",
        r"\b(?:someone|somebody|a \w+|anyone|a person) (?:i|we) (?:could|can) (?:actually )?"
        r"(?:speak|talk|chat) (?:to|with)\b",
        r"\b(?:rather not|don'?t want to|do not want to|not|no more) (?:go through|deal with|"
        r"talk to|speak to|chat with|chat to|use) (?:a |the |this |your )?(?:bot|robot|chatbot|"
        r"machine|ai|automated)\b",
        r"\b(?:someone|somebody|a person|an agent|a colleague)(?: from (?:your|the) \w+)? to "
        r"(?:call|ring|phone|contact|email) (?:me|us)\b",
        r"\bpass (?:this|it|the|my)(?: \w+)? (?:on )?to (?:a|an|your|the|one of your) (?:member of "
        r"(?:your |the )?staff|staff member|person|manager|supervisor|colleague|human|team member)",
        r"\b(?:discuss|deal with|go through|sort) (?:it |this |the matter )?with (?:a|an|a real) "
        r"(?:person|human|member of staff|staff member)\b",
    ),
    "fr": (
        r"\b(?:parler|discuter|jaser|échanger|avoir|joindre|passer|mettre en relation)\b"
        r"[^.?!]{0,30}"
        r"\b(?:conseill[eè]re?|humain|agent|personne|opérat(?:eur|rice)|responsable|"
        r"quelqu['’]un|manager|superviseur|interlocuteur)\b",
        r"\b(?:un|une) (?:vrai|vraie|véritable) (?:personne|humain|conseill[eè]re?|agent|"
        r"employée?|préposée?|être humain)\b|"
        r"\bêtre humain\b|\bpas (?:un|à un|avec un|de) (?:robot|bot|machine|chatbot)\b|"
        r"\ben chair et en os\b",
        # "rappeler" is also "remind": "me rappeler le numéro" asks for a number, not a call
        r"\b(?:rappelez-moi|me rappeler|me recontacter)\b(?! (?:le|la|les|l['’]|mon|ma|mes|"
        r"son|sa|ses|ce|cet|cette|quel|quelle|quand|comment|pourquoi|si|que|qu['’]|à quelle|"
        r"combien|de|des|du)\b)",
        r"\b(?:passez-moi|mettez-moi en (?:relation|contact))\b",
        r"\b(?:avoir|joindre|parler à)\b[^.?!]{0,40}\b(?:au|par) (?:téléphone|tél|bout du fil)\b",
        r"\bme faire rappeler\b|\bque quelqu['’]un (?:me |nous )?(?:rappelle|contacte|appelle)\b",
        r"\b(?:parler|avoir)\b[^.?!]{0,20}\b(?:coordinat(?:eur|rice)|gérante?|directeur|"
        r"directrice|technicien(?:ne)?|spécialiste)\b",
    ),
    "de": (
        r"\b(?:mit einem menschen|echten menschen|mitarbeiter sprechen|einen mitarbeiter|"
        r"kein bot|keinen bot|rückruf)\b",
    ),
    "es": (r"\b(?:hablar con (?:una persona|un humano|un agente)|persona real|no un robot)\b",),
    "zh": (
        r"(?:要|找|转|接|换|叫|给我|帮我|我想(?:和|跟)|让)[^，。！？,.!?]{0,4}(?:人工|真人|活人|"
        r"客服人员|客服专员|工作人员)|转人工|人工服务|不要机器人|不想(?:跟|和)机器人|别用机器人|"
        r"(?:找|叫|让|请)(?:一下|下)?[^，。！？,.!?]{0,6}(?:经理|主管|负责人|领导|管事的)|"
        r"(?:给我|帮我)?找(?:个|一个)人来|"
        r"转接|回电|打(?:个|一个)?电话给我|给我(?:打|回)(?:个|一个)?电话|回(?:个|一个)?电话给我|"
        r"(?:让|请|叫|安排)[^，。！？]{0,8}(?:给我|跟我|和我)(?:打|回|联系|通)|"
        r"(?:有没有|能不能|可不可以|可以)[^，。！？]{0,12}(?:老师|专员|负责人|工作人员|客服|工程师|"
        r"技术人员|技术员|师傅|经理|人)"
        r"[^，。！？]{0,6}(?:对接|联系我|打给我|回个电话|打个电话|加(?:个)?微信)",
    ),
}

FAILED_ANSWER = {
    "en": (
        r"\b(?:did ?n[o']?t|does ?n[o']?t|has ?n[o']?t|have ?n[o']?t|won[o']?t|is ?n[o']?t|"
        r"did not|does not|has not|have not|will not|is not|not) (?:help|helping|work|working|"
        r"worked|fix|fixed|solve|solved|change|changed|make any difference|answer)",
        r"\b(?:still (?:not|no|doesn'?t|does not|isn'?t|won'?t|broken|the same|nothing|"
        r"happening|getting|fails|failing|crashes|there|showing|shows|greyed|grayed|grey|gray)|"
        r"same (?:\w+ )?(?:problem|issue|answer|reply|response|thing|error|message|result|page|"
        r"freeze|crash|glitch|fault|spot|point|place|stage|step|frame|moment|"
        r"screen|code|light|display|symptom|outcome|story))\b|"
        r"\b(?:it|that|this)(?:'s| is)? still\b|\b(?:but|and|yet) still\b|\bno change\b|"
        r"[,;.]\s*still\b|^still\b|\bstill (?:a|an|no|just|stuck|says|shows|blank|black|"
        r"broken|down|dead|loading|spinning|frozen|can'?t)\b|"
        r"\bnothing (?:changed|happens|happened)\b|\bno (?:luck|joy|dice)\b|"
        r"\b(?:no|made no|didn'?t make (?:a|any)|did not make (?:a|any)) difference\b",
        r"\b(?:doesn'?t|does not|didn'?t|did not|won'?t|isn'?t|is not|not) (?:\w+ ){0,2}either\b",
        r"\b(?:dropped|crashed|failed|froze|stopped|cut out|died|disconnected|happened|broke|"
        r"went off|went down|popped up|showed up|appeared|cut off|logged me out) again\b",
        r"\b(?:says|said|shows|showed|gives|gave|is|was|got)\b[^.?!]{0,15}\b(?:expired|invalid|"
        r"an error|error|failed|broken|declined|rejected) (?:too|as well|again)\b",
        r"\b(?:came|comes|is|was|keeps coming) back (?:after|within|straight away|again|"
        r"immediately|the next|as soon as)|\breappear\w*|\bre-appear\w*|\bback again\b",
        r"\b(?:already (?:tried|did|done)|tried (?:that|this|it|everything|all)|"
        r"i did that)\b",
        r"\b(?:not helpful|unhelpful|no help|useless (?:answer|reply|advice)|"
        r"(?:that|this)(?:'s| is) not an answer|you keep (?:saying|telling|repeating|sending|"
        r"giving)|you(?:'re| are) not (?:helping|listening)|going (?:round|around) in circles)\b",
    ),
    "fr": (
        r"\b(?:ça|cela|ce|ca) (?:n['’]a|ne|n['’]) ?(?:rien )?(?:pas )?(?:marché|fonctionné|aidé|"
        r"changé|résolu|réglé|servi)",
        r"\bn['’]a (?:rien|pas) (?:changé|marché|fonctionné|résolu|aidé)",
        r"\b(?:toujours (?:pas|rien|le même|la même|aussi|en panne|bloqué)|ne (?:marche|"
        r"fonctionne) (?:toujours )?pas)\b",
        r"\b(?:déjà (?:essayé|fait|testé)|même réponse|vous (?:me )?répétez|"
        r"ne m['’]aide pas|aucune aide|tourne en rond|inutile|rien à faire|rien n['’]y fait|"
        r"sans succès|pas mieux|non plus|même (?:message|erreur|problème|résultat|écran)|"
        r"pareil|idem|même chose|aucun changement|pas de changement|aucune différence)\b",
        r"\btoujours\b(?! client| fidèle)",
        r"\breste (?:muet|éteint|bloqué|figé|noir|hors ligne|en panne|inchangé|vide|gris|rouge|"
        r"fermé|"
        r"allumé|fixe)\w*|\brien ne (?:change|bouge|se passe)\b",
    ),
    "de": (r"\b(?:hat nicht geholfen|funktioniert (?:immer )?noch nicht|schon versucht)\b",),
    "es": (r"\b(?:no (?:ha )?funcion\w*|no me ayud\w*|ya lo intenté|sigue sin)\b",),
    "zh": (
        r"没用|没有用|不管用|无效|不行|没反应|没效果|还是没|还是一样|仍然|依然|照样|试过了|也试了|"
        r"还是(?:不|没|一样|老样子|红|报|显示|提示|那样|原样|转圈|卡|[A-Za-z0-9]|[-\uff0d]\d)|"
        r"还是\w{0,3}不(?:了|出来|上|动|开|到)|"
        r"也一样|一样的问题|一样(?:卡|不|没|打不开|黑屏|转圈|报错)|"
        r"已经试过|都试了|没解决|"
        r"没有解决|一样的(?:回答|答复|话)|同样的(?:回答|答复|话)|重复|答非所问|等于没说|"
        r"说了(?:好几遍|很多次)|又是这",
    ),
}

ADVICE_FOLLOWED = (
    r"\b(?:tried|did|done|followed|cleared|restarted|reset|reinstalled|rebooted|updated|moved|"
    r"checked|changed|switched|unplugged)\b[^.?!]{0,50}\b(?:as (?:you )?(?:said|suggested|"
    r"advised|instructed|told me)|like you (?:said|suggested)|as suggested|you suggested)\b",
    r"\b(?:comme (?:indiqué|conseillé|demandé|vous (?:me )?l['’]avie?z (?:dit|conseillé)|"
    r"vous (?:dites|disiez))|selon vos (?:conseils|instructions))\b",
    r"按(?:照)?你(?:们)?说的|照你(?:们)?说的|按(?:照)?(?:步骤|你们的方法)",
)
"""Following a step we gave, reported in a later message: the customer comes back because
it did not work, unless the message says it did."""
WORKED = (
    r"\b(?:it )?(?:works|worked|working) now\b|\b(?:fixed|sorted|solved) (?:it|now)\b|"
    r"\bit works\b|(?<!n't )(?<!not )(?<!never )\b(?:that|it|again) worked\b|\ball good\b|"
    r"\bthank|\bça (?:marche|fonctionne)\b|\bc['’]est bon\b|\bmerci\b|好了|可以了|解决了|谢谢"
)

EARLIER_ADVICE = (
    r"\b(?:you (?:told|advised|asked) me|you(?:'d)? (?:suggested|recommended)|"
    r"as you (?:said|suggested)|(?:your|the) (?:agent|colleague"
    r"|support)(?:'s)? (?:told|said|advised)|your (?:advice|suggestion|instructions|steps|fix|"
    r"solution|method))\b",
    r"\b(?:vous m['’]avez (?:dit|conseillé|demandé)|vous me l['’]avie?z (?:dit|conseillé)|"
    r"comme vous (?:dites|l['’]avez dit)|votre "
    r"(?:conseil|solution|méthode|procédure)|votre collègue m['’]a dit)\b",
    r"\b(?:sie haben mir gesagt|ihr (?:tipp|rat|vorschlag))\b",
    r"你们(?:给|说|教)的|你们说|上次(?:你们|客服)?说|客服(?:说|给)的|按(?:照)?你们说的|你们让我",
)
"""The message refers to advice we gave before: its "did not work" is a verdict on our
help even in a conversation's first message (the advice came in an earlier one)."""

REFUND_WORDS = {
    "en": r"\b(?:refund\w*|money back|reimburs\w*|pay (?:me )?back|compensat\w*|"
    r"(?:deposit|money|payment|balance) (?:comes?|coming|to come|goes|going|to go) back|"
    r"return (?:my|the|our) (?:deposit|money|payment)|"
    r"(?:want|get|need|give me|have|like) (?:my |the |all |back )?(?:[^.?!]|\.\d){0,30}\bback\b|"
    r"(?:returned|refunded|credited|put back|paid back) (?:to|on|onto|into) my (?:card|account|"
    r"bank))",
    "fr": r"\b(?:rembours\w*|récupérer (?:mon|mes|l['’])argent|mon argent)",
    "de": r"\b(?:erstatt\w*|zurückzahl\w*|geld zurück)",
    "es": r"\b(?:reembols\w*|devolución del dinero|devuélvanme)",
    "zh": r"退款|退钱|退还|退给我|退我|返还|赔偿|把钱|原路退回|退回(?:给我|来|到)|"
    r"(?:定金|订金|押金|预付款|余款|尾款|钱|款)[^，。！？]{0,8}(?:退|返)",
}
